"""`n2m corpus verify`: measure that the corpus is what its labels say.

On a deterministic sample of clips (spread over shards and styles):
- tempo by librosa beat tracking (beat times fitted with a line, so the estimate is not limited to
  the tracker's tempo bins): strict = within 4 % of the label; octave = within 4 % of 2x, 1/2x (and,
  reported apart, 3/2x, 2/3x for triple and compound metres);
- key by chroma (CQT) correlated with Krumhansl-Kessler profiles extended by the notes' harmonics, plus a bonus for the pitch class the
  bass register dwells on, the opening and closing bars weighted extra (the weights were chosen
  on corpus v2 and checked on a corpus built from another seed): the label's tonic or its relative;
- no silent, clipped or DC-offset clips; sizes and offsets consistent with the labels;
- every caption agrees with the metadata (controls parsed back with bridge.controls.parse_controls,
  and the genre named).
"""

from __future__ import annotations

import json
import multiprocessing as mp
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from n2m.bridge.controls import BEATS_PER_BAR, TONICS, parse_controls, relative_tonic
from n2m.bridge.grid import beat_quarters

from .reader import CorpusReader
from .styles import DEFS

TEMPO_TOL = 0.04
PRIOR_BPM = (55.0, 190.0)
BASS_WEIGHT = 0.2
EDGE_WEIGHT = 1.0
KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
THRESHOLDS = {"tempo": 0.95, "key": 0.90}


def harmonic_profile(profile: np.ndarray, decay: float = 0.5, harmonics: int = 6) -> np.ndarray:
    """A symbolic key profile as audio chroma sees it: every note also sounds its harmonics
    (octaves, the twelfth, the major seventeenth...), with amplitudes decay**(h-1) (as HPCP key
    profiles do). Without this, audio chroma leans towards the dominant key."""
    out = np.zeros(12)
    for h in range(1, harmonics + 1):
        out += decay ** (h - 1) * np.roll(profile, int(round(12 * np.log2(h))) % 12)
    return out


AUDIO_MAJOR, AUDIO_MINOR = harmonic_profile(KK_MAJOR), harmonic_profile(KK_MINOR)


def estimate_tempo(y: np.ndarray, sr: int = 16000) -> float:
    import librosa
    import scipy.stats

    hop = 160
    env = librosa.onset.onset_strength(y=y, sr=sr, hop_length=hop)
    # A flat tempo prior over the corpus's range (a property of every clip, not of its label);
    # librosa's default prior leans to 120 bpm and reads fast 4/4 as 2/3 of its tempo.
    tempo, beats = librosa.beat.beat_track(onset_envelope=env, sr=sr, hop_length=hop, units="time",
                                           prior=scipy.stats.uniform(PRIOR_BPM[0], PRIOR_BPM[1] - PRIOR_BPM[0]))
    if len(beats) >= 6:
        slope = float(np.polyfit(np.arange(len(beats)), beats, 1)[0])
        if slope > 0:
            return 60.0 / slope
    return float(np.atleast_1d(tempo)[0])


def tempo_class(est: float, label: float, meter: str = "4/4") -> str:
    """strict / octave / metric / wrong. In 6/8 the felt beat is the dotted quarter (as in
    bridge.grid), so 2/3 of the quarter-note bpm label counts as strict there."""
    r = est / label
    if abs(r - 1) <= TEMPO_TOL or abs(est / (label / beat_quarters(meter)) - 1) <= TEMPO_TOL:
        return "strict"
    for f in (2.0, 0.5, 4.0, 0.25):
        if abs(r / f - 1) <= TEMPO_TOL:
            return "octave"
    for f in (1.5, 2 / 3, 3.0, 1 / 3):
        if abs(r / f - 1) <= TEMPO_TOL:
            return "metric"
    return "wrong"


def estimate_key(y: np.ndarray, sr: int = 16000, bar_seconds: float | None = None) -> tuple[int, str]:
    """(tonic pitch class, major|minor). With bar_seconds, the opening and closing bars count
    extra (EDGE_WEIGHT each): a phrase establishes its key where it starts and where it cadences."""
    import librosa

    hop = 1024
    chroma = librosa.feature.chroma_cqt(y=y, sr=sr, hop_length=hop, bins_per_octave=36)
    prof = chroma.mean(axis=1)
    if bar_seconds:
        nb = max(1, min(chroma.shape[1] // 2, int(round(bar_seconds * sr / hop))))
        prof = prof + EDGE_WEIGHT * (chroma[:, :nb].mean(axis=1) + chroma[:, -nb:].mean(axis=1))
    # the bass register's strongest pitch class per frame: the home note a listener hears
    low = np.abs(librosa.cqt(y, sr=sr, hop_length=1024, fmin=librosa.note_to_hz("C1"), n_bins=24,
                             bins_per_octave=12))
    bass = np.bincount(low.reshape(2, 12, -1).sum(axis=0).argmax(axis=0), minlength=12) / low.shape[1]
    best = (-2.0, 0, "major")
    for k in range(12):
        for tmpl, m in ((AUDIO_MAJOR, "major"), (AUDIO_MINOR, "minor")):
            c = float(np.corrcoef(prof, np.roll(tmpl, k))[0, 1]) + BASS_WEIGHT * float(bass[k])
            if c > best[0]:
                best = (c, k, m)
    return best[1], best[2]


def caption_problems(meta: dict) -> list[str]:
    probs = []
    words = [w.lower() for w in DEFS[meta["style"]].words]
    for c in meta["captions"]:
        pc = parse_controls(c)
        if pc.bpm is not None and abs(pc.bpm - meta["bpm"]) > 1e-6:
            probs.append(f"bpm {pc.bpm} in {c!r}")
        if pc.key is not None and (pc.key != meta["key"] or pc.mode != meta["mode"]):
            probs.append(f"key {pc.key} {pc.mode} in {c!r}")
        if pc.meter is not None and pc.meter != meta["meter"]:
            probs.append(f"meter {pc.meter} in {c!r}")
        if pc.bars is not None and pc.bars != meta["bars"]:
            probs.append(f"bars {pc.bars} in {c!r}")
        if not any(w in c.lower() for w in words):
            probs.append(f"no genre word in {c!r}")
    if len(meta["captions"]) < 4:
        probs.append("fewer than 4 captions")
    return probs


def check_clip(args: tuple[str, dict]) -> dict:
    root, clip = args
    reader = CorpusReader(root)
    y = reader.audio16k(clip)
    out: dict = {"id": clip["id"], "style": clip["style"], "bpm": clip["bpm"], "key": clip["key"],
                 "mode": clip["mode"], "meter": clip["meter"], "problems": []}
    dur = clip["bars"] * BEATS_PER_BAR[clip["meter"]] * 60.0 / clip["bpm"]
    if abs(dur - clip["duration"]) > 1e-3:
        out["problems"].append(f"duration {clip['duration']} != bars at tempo {dur:.4f}")
    if clip["audio_samples"] != int(round(dur * 16000)):
        out["problems"].append("audio_samples does not match the duration")
    if clip["mel_frames"] != 1 + clip["audio_samples"] // 320:
        out["problems"].append("mel_frames does not match audio_samples")
    if reader.has_audio48k and clip.get("audio48k_samples") != int(round(dur * 48000)):
        out["problems"].append("audio48k_samples does not match the duration")
    rms = float(np.sqrt(np.mean(y.astype(np.float64) ** 2)))
    out["rms_db"] = 20 * np.log10(max(rms, 1e-9))
    out["peak"] = float(np.abs(y).max())
    out["dc"] = float(np.mean(y))
    out["silent"] = out["rms_db"] < -45.0
    out["clipped"] = bool(np.sum(np.abs(y) >= 0.999) >= 3)
    out["dc_offset"] = abs(out["dc"]) > 0.005
    try:
        import soundfile as sf

        info = sf.info(str(reader.flac_path(clip)))
        fr = int(reader.info.get("flac_rate", 44100))
        if info.channels != 2 or info.samplerate != fr or info.frames != int(round(dur * fr)):
            out["problems"].append(f"flac {info.channels} ch {info.samplerate} Hz {info.frames} frames")
    except Exception as exc:  # noqa: BLE001
        out["problems"].append(f"flac unreadable: {exc}")
    est = estimate_tempo(y)
    out["tempo_est"] = est
    out["tempo"] = tempo_class(est, clip["bpm"], clip["meter"])
    k, m = estimate_key(y, bar_seconds=clip["duration"] / clip["bars"])
    out["key_est"] = f"{TONICS[k]} {m}"
    t = TONICS.index(clip["key"])
    out["key_ok"] = k in (t, relative_tonic(t, clip["mode"]))
    out["caption_problems"] = caption_problems(clip)
    return out


@dataclass
class VerifyReport:
    clips: int = 0
    tempo: dict[str, int] = field(default_factory=dict)
    key_ok: int = 0
    silent: int = 0
    clipped: int = 0
    dc_offset: int = 0
    caption_problems: int = 0
    other_problems: int = 0
    by_style: dict[str, dict] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)

    @property
    def tempo_strict(self) -> float:
        return self.tempo.get("strict", 0) / max(1, self.clips)

    @property
    def tempo_octave_ok(self) -> float:
        return (self.tempo.get("strict", 0) + self.tempo.get("octave", 0)) / max(1, self.clips)

    @property
    def key_rate(self) -> float:
        return self.key_ok / max(1, self.clips)

    def passed(self) -> bool:
        return (self.tempo_octave_ok >= THRESHOLDS["tempo"] and self.key_rate >= THRESHOLDS["key"]
                and not (self.silent or self.clipped or self.dc_offset or self.caption_problems
                         or self.other_problems))


def sample_clips(reader: CorpusReader, n: int) -> list[dict]:
    """A deterministic sample spread evenly over the corpus (which is style-balanced by construction)."""
    clips = reader.clips()
    if n >= len(clips):
        return clips
    idx = np.linspace(0, len(clips) - 1, n).round().astype(int)
    return [clips[i] for i in idx]


def verify(root: str | Path, n: int = 240, jobs: int = 1) -> tuple[VerifyReport, list[dict]]:
    reader = CorpusReader(root)
    clips = sample_clips(reader, n)
    work = [(str(root), c) for c in clips]
    if jobs > 1:
        with mp.get_context("fork").Pool(jobs) as pool:
            results = pool.map(check_clip, work, chunksize=4)
    else:
        results = [check_clip(w) for w in work]
    rep = VerifyReport(clips=len(results))
    for r in results:
        rep.tempo[r["tempo"]] = rep.tempo.get(r["tempo"], 0) + 1
        rep.key_ok += int(r["key_ok"])
        rep.silent += int(r["silent"])
        rep.clipped += int(r["clipped"])
        rep.dc_offset += int(r["dc_offset"])
        rep.caption_problems += int(bool(r["caption_problems"]))
        rep.other_problems += int(bool(r["problems"]))
        s = rep.by_style.setdefault(r["style"], {"clips": 0, "strict": 0, "octave": 0, "metric": 0, "wrong": 0,
                                                  "key_ok": 0})
        s["clips"] += 1
        s[r["tempo"]] += 1
        s["key_ok"] += int(r["key_ok"])
        for p in r["caption_problems"] + r["problems"]:
            if len(rep.examples) < 20:
                rep.examples.append(f"{r['id']}: {p}")
    return rep, results


def print_report(rep: VerifyReport) -> None:
    t = rep.tempo
    print(f"verified {rep.clips} clips")
    print(f"tempo (beat tracking vs label): strict within 4%: {t.get('strict', 0)} ({100 * rep.tempo_strict:.1f}%), "
          f"octave errors (2x, 1/2x): {t.get('octave', 0)}, metric errors (3/2x, 2/3x): {t.get('metric', 0)}, "
          f"wrong: {t.get('wrong', 0)}; strict or octave: {100 * rep.tempo_octave_ok:.1f}% "
          f"(needs >= {100 * THRESHOLDS['tempo']:.0f}%)")
    print(f"key (tonic or relative): {rep.key_ok}/{rep.clips} ({100 * rep.key_rate:.1f}%, needs >= "
          f"{100 * THRESHOLDS['key']:.0f}%)")
    print(f"silent: {rep.silent}, clipped: {rep.clipped}, DC offset: {rep.dc_offset}, "
          f"clips with caption disagreements: {rep.caption_problems}, other problems: {rep.other_problems}")
    print(f"{'style':<14} {'clips':>5} {'strict':>6} {'octave':>6} {'metric':>6} {'wrong':>5} {'key ok':>6}")
    for name, s in sorted(rep.by_style.items()):
        print(f"{name:<14} {s['clips']:>5} {s['strict']:>6} {s['octave']:>6} {s['metric']:>6} {s['wrong']:>5} "
              f"{s['key_ok']:>6}")
    for e in rep.examples:
        print("  " + e)
    print("PASS" if rep.passed() else "FAIL")


def main_verify(args) -> int:
    from .reader import CorpusError

    if args.clips < 1:
        print("n2m corpus verify: --clips must be at least 1")
        return 2
    try:
        rep, results = verify(args.corpus, args.clips, args.jobs)
    except CorpusError as exc:
        print(f"n2m corpus verify: {exc}")
        return 2
    if rep.clips == 0:
        print(f"n2m corpus verify: {args.corpus} has no complete shards yet")
        return 2
    print_report(rep)
    if args.json:
        args.json.write_text(json.dumps({"report": asdict(rep), "passed": rep.passed(),
                                         "tempo_strict": rep.tempo_strict, "tempo_octave_ok": rep.tempo_octave_ok,
                                         "key_rate": rep.key_rate, "clips": results}, indent=1, default=float))
    return 0 if rep.passed() else 1
