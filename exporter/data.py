"""Training examples drawn from the corpus (exporter.corpus.reader), and a tiny synthetic corpus.

`GeneratorData` draws random ~10 s crops of cached log-mel (the 80-bin mel, or with
`representation="coarse"` the v2 COARSE mel) with a caption, the clip's controls and
the beat grid computed for the crop's exact start time (clip time 0 is a downbeat), applying the
classifier-free-guidance dropout: the caption becomes "" and each control becomes unspecified
independently (dropping bpm also zeroes the grid), and sometimes everything at once.

`VocoderData` draws short random snippets of (normalised log-mel, audio * audio_scale) aligned so
that mel frame k covers samples [k * hop, (k + 1) * hop).

Waveform route: `WaveGenData` is `GeneratorData` with 3.2 kHz audio crops (derived from the 16 kHz
mix with soxr) in place of the log-mel. `AudioCascaderData` draws random snippets of (target audio,
conditioning audio) for the audio-conditioned cascaders: 16 kHz targets with 3.2 kHz conditioning
derived from them ("cascader"), or 48 kHz targets, which must be the corpus' own 48 kHz renders
(`n2m corpus build --audio48k`; never upsampled 16 kHz), with 16 kHz conditioning derived from them
("superres"). The conditioning is brought back up to the target rate with the runtime's own
`bridge.resample.upsample`; its noise augmentation happens in the training step.

`write_synthetic_corpus` writes a small format-1 corpus of click-and-chord loops, for tests and for
development before the real corpus exists.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from n2m.bridge.controls import BEATS_PER_BAR, METERS, MODES, TONICS, ControlError, Controls
from n2m.bridge.features import COARSE, FINE, MelSpec, coarse_mel, fine_mel, log_mel, side_bands
from n2m.bridge.grid import beat_grid
from n2m.bridge.resample import upsample
from n2m.exporter.corpus.reader import CorpusError, CorpusReader


@dataclass
class DropoutConfig:
    """Classifier-free-guidance dropout probabilities."""

    text: float = 0.1
    bpm: float = 0.1
    key: float = 0.1
    mode: float = 0.1
    meter: float = 0.1
    all: float = 0.05


def clip_controls(meta: dict) -> Controls:
    """The controls a clip's metadata states (anything missing or invalid stays unspecified)."""
    def ok(fn, value):
        if value in (None, ""):
            return None
        try:
            return fn(value)
        except (ControlError, ValueError, TypeError):
            return None

    from n2m.bridge.controls import normalize_key, normalize_meter, normalize_mode

    bpm = meta.get("bpm")
    return Controls(
        bpm=float(bpm) if isinstance(bpm, int | float) and bpm > 0 else None,
        key=ok(normalize_key, meta.get("key")),
        mode=ok(normalize_mode, meta.get("mode")),
        meter=ok(normalize_meter, meta.get("meter")),
    )


def _open(corpus: str | Path | CorpusReader) -> CorpusReader:
    return corpus if isinstance(corpus, CorpusReader) else CorpusReader(corpus)


class GeneratorData:
    """Random crops for the generator; `batch(rng, n)` returns tensors plus caption strings."""

    def __init__(self, corpus: str | Path | CorpusReader, split: str = "train", crop_frames: int = 512,
                 mel_mean: float = -4.5, mel_scale: float = 7.0,
                 dropout: DropoutConfig | None = None, representation: str = "mel", side_bands: int = 0) -> None:
        self.reader = _open(corpus)
        self.representation = representation
        if side_bands and representation != "coarse":
            raise ValueError("side bands go with the COARSE representation")
        self.coarse = replace(COARSE, side_bands=int(side_bands))
        self._sides: dict[str, np.ndarray] = {}
        frames_key = "coarse_frames" if representation == "coarse" else "mel_frames"
        self.clips = [c for c in self.reader.clips(split) if c.get(frames_key, 0) > 0
                      and (not side_bands or c.get("fine_frames", 0) > 0)]
        if not self.clips:
            if representation == "coarse" and self.reader.clips(split):
                self.reader.coarse(self.reader.clips(split)[0])  # raises CorpusError naming the fix
            raise ValueError(f"corpus {self.reader.root} has no {split!r} clips")
        self.spec = MelSpec(**self.reader.info["mel"]) if isinstance(self.reader.info.get("mel"), dict) else MelSpec()
        self.frame_rate = self.spec.frame_rate
        if representation == "coarse":
            if self.reader.coarse_spec != COARSE:
                raise CorpusError(f"{self.reader.root}: its COARSE mel ({self.reader.coarse_spec}) is not this "
                                  f"version's ({COARSE}): rebuild the corpus")
            self.frame_rate = COARSE.frame_rate
        elif representation != "mel":
            raise ValueError(f"representation {representation!r} is not 'mel' or 'coarse'")
        self.crop_frames = int(crop_frames)
        self.mel_mean, self.mel_scale = float(mel_mean), float(mel_scale)
        self.dropout = dropout or DropoutConfig()
        self.controls = [clip_controls(c) for c in self.clips]
        self.captions = sorted({cap for c in self.clips for cap in (c.get("captions") or [])} | {""})

    key = "mel"  # the batch entry holding the signal

    def signal(self, clip: dict) -> tuple[np.ndarray, int]:
        """(the clip's training signal [C, frames * hop], hop): normalised log-mel (with side bands:
        the COARSE mel over its side bands, bridge.features.side_bands), hop 1."""
        mel = self.reader.coarse(clip) if self.representation == "coarse" else self.reader.mel(clip)
        if self.coarse.side_bands:
            key = clip.get("id") or str(clip.get("shard"))
            if key not in self._sides:  # measured once per clip (the FINE cache is 40 times COARSE's size)
                sides = side_bands(self.reader.fine(clip), self.coarse)[:, :mel.shape[1]]
                self._sides[key] = np.pad(sides, ((0, 0), (0, mel.shape[1] - sides.shape[1])), mode="edge")
            mel = np.concatenate([mel, self._sides[key]])
        return (mel - self.mel_mean) / self.mel_scale, 1

    def example(self, rng: np.random.Generator, index: int | None = None, drop: bool = True) -> dict:
        i = int(rng.integers(len(self.clips))) if index is None else index
        clip, ctl = self.clips[i], self.controls[i]
        sig, hop = self.signal(clip)
        n = sig.shape[1] // hop
        f = self.crop_frames
        if n >= f:
            start = int(rng.integers(0, n - f + 1))
            crop = sig[:, start * hop:(start + f) * hop]
        else:  # short clip: loop it (clips are whole bars, so the grid phase stays exact)
            start = 0
            period = int(round(float(clip.get("duration", 0.0)) * self.frame_rate))
            period = period if 0 < period <= n else n
            reps = -(-f // period)
            crop = np.tile(sig[:, :period * hop], (1, reps))[:, :f * hop]
        caps = clip.get("captions") or [""]
        caption = caps[int(rng.integers(len(caps)))]
        bpm, key, mode, meter = ctl.bpm, ctl.key, ctl.mode, ctl.meter
        if drop:
            d = self.dropout
            if rng.random() < d.all:
                caption, bpm, key, mode, meter = "", None, None, None, None
            else:
                caption = "" if rng.random() < d.text else caption
                bpm = None if rng.random() < d.bpm else bpm
                key = None if rng.random() < d.key else key
                mode = None if rng.random() < d.mode else mode
                meter = None if rng.random() < d.meter else meter
        # the grid uses the clip's true meter even when the meter token is dropped
        grid = beat_grid(f, self.frame_rate, bpm, ctl.meter, start_seconds=start / self.frame_rate)
        idx = Controls(key=key, mode=mode, meter=meter).indices()
        return {
            self.key: crop,
            "caption": caption,
            "bpm": 0.0 if bpm is None else float(bpm),
            "key": idx["key"], "mode": idx["mode"], "meter": idx["meter"],
            "grid": grid,
            "clip": clip.get("id", str(i)), "start": start,
        }

    def batch(self, rng: np.random.Generator, n: int, drop: bool = True) -> dict:
        exs = [self.example(rng, drop=drop) for _ in range(n)]
        return {
            self.key: torch.from_numpy(np.stack([e[self.key] for e in exs]).astype(np.float32)),
            "captions": [e["caption"] for e in exs],
            "bpm": torch.tensor([e["bpm"] for e in exs], dtype=torch.float32),
            "key": torch.tensor([e["key"] for e in exs], dtype=torch.int64),
            "mode": torch.tensor([e["mode"] for e in exs], dtype=torch.int64),
            "meter": torch.tensor([e["meter"] for e in exs], dtype=torch.int64),
            "grid": torch.from_numpy(np.stack([e["grid"] for e in exs]).astype(np.float32)),
        }


class SpectralData(GeneratorData):
    """Crops for the spectral cascader, at FINE's 100 frames/s: the clip's FINE mid and side mel
    stacked over its COARSE mel repeated to 100 frames/s (the conditioning), all normalised alike:
    `signal` is [2 * 192 + 145, frames] and the trainer splits target from conditioning. With
    side "relative" the side rows hold the normalised side minus the normalised mid. Captions,
    controls and the beat grid (at 100 frames/s) as for the generator."""

    def __init__(self, corpus: str | Path | CorpusReader, split: str = "train", crop_frames: int = 512,
                 mel_mean: float = -1.5, mel_scale: float = 3.4, dropout: DropoutConfig | None = None,
                 side: str = "absolute") -> None:
        super().__init__(corpus, split, crop_frames, mel_mean, mel_scale, dropout, "coarse")
        self.relative = side == "relative"
        self.clips = [c for c in self.clips if c.get("fine_frames", 0) > 0]
        self.controls = [clip_controls(c) for c in self.clips]
        if not self.clips:
            raise ValueError(f"corpus {self.reader.root} has no {split!r} clips with FINE caches")
        self.frame_rate = FINE.frame_rate

    def signal(self, clip: dict) -> tuple[np.ndarray, int]:
        fine = self.reader.fine(clip)  # [2, 192, F]
        n = fine.shape[2]
        coarse = np.repeat(self.reader.coarse(clip), COARSE.pool, axis=1)[:, :n]
        if coarse.shape[1] < n:
            coarse = np.pad(coarse, ((0, 0), (0, n - coarse.shape[1])), mode="edge")
        sig = (np.concatenate([fine.reshape(2 * fine.shape[1], n), coarse], axis=0) - self.mel_mean) / self.mel_scale
        if self.relative:
            b = fine.shape[1]
            sig[b:2 * b] -= sig[:b]
        return sig, 1


class VocoderData:
    """Random aligned (mel, audio) snippets for the vocoder cascader."""

    def __init__(self, corpus: str | Path | CorpusReader, split: str = "train", snippet_frames: int = 50,
                 mel_mean: float = -4.5, mel_scale: float = 7.0, audio_scale: float = 1.0) -> None:
        self.reader = _open(corpus)
        self.clips = [c for c in self.reader.clips(split) if c.get("mel_frames", 0) > 0]
        if not self.clips:
            raise ValueError(f"corpus {self.reader.root} has no {split!r} clips")
        self.spec = MelSpec(**self.reader.info["mel"]) if isinstance(self.reader.info.get("mel"), dict) else MelSpec()
        self.frames = int(snippet_frames)
        self.mel_mean, self.mel_scale, self.audio_scale = float(mel_mean), float(mel_scale), float(audio_scale)

    def example(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        clip = self.clips[int(rng.integers(len(self.clips)))]
        mel = self.reader.mel(clip)
        audio = self.reader.audio16k(clip)
        hop, f = self.spec.hop, self.frames
        n = min(mel.shape[1], len(audio) // hop)
        m = np.full((mel.shape[0], f), np.log(self.spec.log_floor), dtype=np.float32)
        a = np.zeros(f * hop, dtype=np.float32)
        start = int(rng.integers(0, max(1, n - f + 1)))
        k = min(f, n - start)
        m[:, :k] = mel[:, start:start + k]
        a[: k * hop] = audio[start * hop:(start + k) * hop]
        return (m - self.mel_mean) / self.mel_scale, a * self.audio_scale

    def batch(self, rng: np.random.Generator, n: int) -> dict:
        exs = [self.example(rng) for _ in range(n)]
        return {
            "mel": torch.from_numpy(np.stack([e[0] for e in exs]).astype(np.float32)),
            "audio": torch.from_numpy(np.stack([e[1] for e in exs])[:, None, :].astype(np.float32)),
        }


def _resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Band-limited resampling (soxr, HQ) to exactly len(x) * rate_out / rate_in samples."""
    import soxr

    n = len(x) * rate_out // rate_in
    y = soxr.resample(np.ascontiguousarray(x, dtype=np.float32), rate_in, rate_out, quality="HQ")
    return np.pad(y, (0, max(0, n - len(y))))[:n].astype(np.float32)


class WaveGenData(GeneratorData):
    """GeneratorData for the waveform generator: 3.2 kHz audio crops (times audio_scale), grid at 50 Hz."""

    key = "audio"

    def __init__(self, corpus: str | Path | CorpusReader, split: str = "train", crop_frames: int = 512,
                 sample_rate: int = 3200, audio_scale: float = 1.0,
                 dropout: DropoutConfig | None = None) -> None:
        super().__init__(corpus, split, crop_frames, dropout=dropout)
        self.sample_rate, self.audio_scale = int(sample_rate), float(audio_scale)
        hop = self.spec.sample_rate * 1.0 / self.spec.frame_rate  # 16 kHz samples per grid frame
        if self.spec.sample_rate % self.sample_rate or (hop * self.sample_rate / self.spec.sample_rate) % 1:
            raise ValueError(f"wavegen rate {self.sample_rate} must divide {self.spec.sample_rate} into "
                             f"whole samples per {self.spec.frame_rate:g} Hz frame")
        self.hop = int(round(hop * self.sample_rate / self.spec.sample_rate))

    def signal(self, clip: dict) -> tuple[np.ndarray, int]:
        low = _resample(self.reader.audio16k(clip), self.spec.sample_rate, self.sample_rate)
        n = (len(low) // self.hop) * self.hop
        return (low[None, :n] * self.audio_scale).astype(np.float32), self.hop


class AudioCascaderData:
    """Random (target, upsampled conditioning) snippets for an audio-conditioned cascader.

    stage "cascader": 16 kHz targets (the corpus mix), conditioning at `cond_rate` (3.2 kHz)
    derived from them. stage "superres": 48 kHz targets (the corpus' 48 kHz renders; a corpus without
    them is refused, never faked by upsampling), 16 kHz conditioning derived from them. Snippets start
    on 50 Hz frame boundaries; both signals are times `audio_scale`.
    """

    MARGIN = 64  # conditioning-rate samples of context resampled on each side of a snippet

    def __init__(self, corpus: str | Path | CorpusReader, split: str = "train", snippet_frames: int = 50,
                 stage: str = "cascader", sample_rate: int = 16000, cond_rate: int = 3200,
                 audio_scale: float = 1.0) -> None:
        self.reader = _open(corpus)
        self.clips = [c for c in self.reader.clips(split) if c.get("audio_samples", 0) > 0]
        if not self.clips:
            raise ValueError(f"corpus {self.reader.root} has no {split!r} clips")
        self.spec = MelSpec(**self.reader.info["mel"]) if isinstance(self.reader.info.get("mel"), dict) else MelSpec()
        if stage not in ("cascader", "superres"):
            raise ValueError(f"stage {stage!r} is not an audio cascader")
        if sample_rate % cond_rate:
            raise ValueError(f"cond_rate {cond_rate} does not divide sample_rate {sample_rate}")
        self.stage, self.sample_rate, self.cond_rate = stage, int(sample_rate), int(cond_rate)
        self.factor = self.sample_rate // self.cond_rate
        if stage == "superres":
            if self.sample_rate != 48000:
                raise ValueError(f"superres targets are 48 kHz audio, got sample_rate {sample_rate}")
            if not self.reader.has_audio48k:
                self.reader.audio48k(self.clips[0])  # raises CorpusError naming the fix
        elif self.sample_rate != self.spec.sample_rate:
            raise ValueError(f"the cascader's targets are the corpus' {self.spec.sample_rate} Hz audio, "
                             f"got sample_rate {sample_rate}")
        self.frames = int(snippet_frames)
        self.hop = int(round(self.sample_rate / self.spec.frame_rate))
        self.audio_scale = float(audio_scale)

    def target_audio(self, clip: dict) -> np.ndarray:
        return self.reader.audio48k(clip) if self.stage == "superres" else self.reader.audio16k(clip)

    def example(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(upsampled conditioning, target), each float32 [frames * hop] times audio_scale."""
        clip = self.clips[int(rng.integers(len(self.clips)))]
        audio = self.target_audio(clip)
        n_frames = len(audio) // self.hop
        length = self.frames * self.hop
        start = int(rng.integers(0, max(1, n_frames - self.frames + 1))) * self.hop
        m = self.MARGIN * self.factor
        seg = np.zeros(length + 2 * m, dtype=np.float32)
        lo, hi = max(0, start - m), min(len(audio), start + length + m)
        seg[lo - (start - m):hi - (start - m)] = audio[lo:hi]
        target = seg[m:m + length].copy()
        low = _resample(seg, self.sample_rate, self.cond_rate)
        cond = upsample(low, self.factor)[m:m + length]
        return cond * self.audio_scale, target * self.audio_scale

    def batch(self, rng: np.random.Generator, n: int) -> dict:
        exs = [self.example(rng) for _ in range(n)]
        return {
            "cond": torch.from_numpy(np.stack([e[0] for e in exs])[:, None, :].astype(np.float32)),
            "audio": torch.from_numpy(np.stack([e[1] for e in exs])[:, None, :].astype(np.float32)),
        }


__all__ = ["DropoutConfig", "GeneratorData", "VocoderData", "WaveGenData", "AudioCascaderData",
           "CorpusError", "clip_controls", "write_synthetic_corpus"]


# ----------------------------------------------------------------------------- synthetic corpus

SYNTH_STYLES = ("techno", "ambient")


def _synth_clip(rng: np.random.Generator, style: str, bpm: float, tonic: int, mode: str, meter: str,
                seconds: float, sr: int) -> np.ndarray:
    n = int(seconds * sr)
    t = np.arange(n) / sr
    audio = np.zeros(n, dtype=np.float64)
    beat = 60.0 / bpm * (1.5 if meter == "6/8" else 1.0)
    per_bar = BEATS_PER_BAR[meter] / (1.5 if meter == "6/8" else 1.0)
    k = 0
    while k * beat < seconds:
        s = int(k * beat * sr)
        length = min(n - s, int(0.08 * sr))
        env = np.exp(-np.arange(length) / (0.015 * sr))
        freq = 60.0 if style == "techno" else 1200.0
        amp = 0.6 if k % int(round(per_bar)) == 0 else 0.35
        audio[s:s + length] += amp * env * np.sin(2 * np.pi * freq * np.arange(length) / sr)
        k += 1
    third = 4 if mode in ("major", "mixolydian") else 3
    for semis in (0, third, 7):
        f0 = 220.0 * 2 ** ((tonic + semis - 9) / 12)
        wave = np.sin(2 * np.pi * f0 * t) if style == "ambient" else np.sign(np.sin(2 * np.pi * f0 * t)) * 0.5
        audio += 0.08 * wave
    audio += 0.003 * rng.standard_normal(n)
    return (audio / max(1e-6, np.abs(audio).max()) * 0.8).astype(np.float32)


def _eval_prompts(path: Path, rng: np.random.Generator, n: int, seconds: float) -> None:
    """n evaluation prompts over the synthetic styles; every other names an instrument."""
    with open(path, "w") as f:
        for i in range(n):
            style = SYNTH_STYLES[i % len(SYNTH_STYLES)]
            key, mode = TONICS[int(rng.integers(12))], MODES[i % 2]
            bpm = float(rng.choice([90, 120, 130]))
            inst = ("synth" if style == "techno" else "bell") if i % 2 else None
            with_inst = f" with {inst}" if inst else ""
            f.write(json.dumps({"prompt": f"{style} loop{with_inst} in {key} {mode}, {bpm:g} bpm", "style": style,
                                "bpm": bpm, "key": key, "mode": mode, "meter": "4/4",
                                "seconds": seconds, "instruments": [inst] if inst else []}) + "\n")


def _synthetic_meta(i: int, style: str, bpm: float, tonic: int, mode: str, meter: str, seconds: float) -> dict:
    key = TONICS[tonic]
    return {
        "id": f"syn{i:04d}", "style": style, "bpm": bpm, "key": key, "mode": mode, "meter": meter,
        "bars": int(seconds * bpm / 60 / BEATS_PER_BAR[meter]), "duration": seconds,
        "instruments": ["drums", "synth"] if style == "techno" else ["pad", "bell"],
        "roles": ["drums", "lead"] if style == "techno" else ["pad", "comp"],
        "captions": [f"{style} loop in {key} {mode}, {bpm:g} bpm, {meter}", f"a {mode} {style} groove"],
        "split": "train" if i % 8 < 6 else ("val" if i % 8 == 6 else "test"), "flac": f"syn{i:04d}.flac",
    }


def write_synthetic_corpus(root: str | Path, n_clips: int = 16, seconds: float = 4.0, seed: int = 0,
                           n_eval_prompts: int = 8, audio48k: bool = False, fine: bool = False) -> Path:
    """A tiny format-1 corpus (one shard) of click-and-chord loops, without FLAC files unless `fine`.
    With `audio48k` the loops are synthesised at 48 kHz, kept as audio48k.npy, and the 16 kHz mix is
    derived from them (like `n2m corpus build --audio48k`). With `fine` they are synthesised at
    44.1 kHz, in stereo (the right channel at 80 %), written as 16-bit FLACs, and the FINE and COARSE
    caches are kept (like a 44.1 kHz `n2m corpus build`)."""
    from n2m.exporter.corpus.build import _ShardArrays

    if audio48k and fine:
        raise ValueError("a corpus keeps 48 kHz audio or the 44.1 kHz FINE caches, not both")
    root = Path(root)
    rng = np.random.default_rng(seed)
    spec = MelSpec()
    shard = root / "shards" / "00000"
    shard.mkdir(parents=True, exist_ok=True)
    metas, arrays = [], _ShardArrays()
    for i in range(n_clips):
        style = SYNTH_STYLES[i % len(SYNTH_STYLES)]
        bpm = float(rng.choice([80, 96, 110, 120, 128, 140]))
        tonic = int(rng.integers(12))
        mode = MODES[int(rng.integers(2))]
        meter = METERS[int(rng.integers(len(METERS)))]
        rate = FINE.sample_rate if fine else 48000 if audio48k else spec.sample_rate
        hi = _synth_clip(rng, style, bpm, tonic, mode, meter, seconds, rate)
        audio = np.clip(_resample(hi, rate, spec.sample_rate), -1.0, 32767 / 32768) if rate != spec.sample_rate else hi
        fm = fine_mel(np.stack([hi, 0.8 * hi])) if fine else None
        meta = _synthetic_meta(i, style, bpm, tonic, mode, meter, seconds)
        if fine:
            import soundfile as sf

            sf.write(str(shard / meta["flac"]), np.stack([hi, 0.8 * hi]).T, rate, subtype="PCM_16")
        arrays.add(meta, SimpleNamespace(
            mel=log_mel(audio, spec), mono16k=np.round(audio * 32767).astype(np.int16), fine=fm,
            coarse=coarse_mel(fm[0]) if fine else None,
            mono_hires=np.round(hi * 32767).astype(np.int16) if audio48k else None))
        metas.append(meta)
    arrays.save(shard)
    with open(shard / "meta.jsonl", "w") as f:
        for m in metas:
            f.write(json.dumps(m) + "\n")
    _eval_prompts(root / "eval_prompts.jsonl", rng, n_eval_prompts, seconds)
    info = {"id": f"synthetic-{seed}", "format": 1, "seed": seed, "hours": n_clips * seconds / 3600,
            "mel": spec.to_dict(), "styles": list(SYNTH_STYLES)}
    if audio48k:
        info["audio48k_rate"] = 48000
    if fine:
        info.update(fine_mel=FINE.to_dict(), coarse_mel=COARSE.to_dict())
    (root / "corpus.json").write_text(json.dumps(info, indent=1))
    return root
