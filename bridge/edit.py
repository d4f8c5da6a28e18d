"""`n2m vary`, `n2m extend`, `n2m inpaint`: new audio made from a clip the producer already has.

    n2m vary clip.wav --strength 0.4 ["PROMPT"] [--variations K] --out DIR
    n2m extend clip.wav --bars 4 ["PROMPT"] --out DIR
    n2m inpaint clip.wav --bars 3-4 ["PROMPT"] --out DIR

FILE is any file pedalboard reads (WAV, FLAC, AIFF, MP3; any rate, mono or stereo). Its tempo comes
from --bpm, else its n2m sidecar, else is measured; its prompt and key likewise. The generator
works from the clip's log-mel (bridge.cascade.Edit): a variation starts from it noised to the
strength; an extension holds the clip's frames and makes the bars after them; an inpainting
holds every frame but those of bars A to B (1-based, inclusive) and crossfades the new bars in
and out with equal-power fades placed, at each join, where the join is least abrupt (just
outside the region, 45 ms at most, where the new audio holds the source's own frames, or over
40-150 ms just inside it). Results keep the
source's rate and channel count, in its format when that is lossless (24-bit WAV otherwise), with
the source named in the sidecar; an extension begins with the source's own samples, untouched,
and the new bars are matched to its loudness.

The daemon's /n2m/vary, /n2m/extend and /n2m/inpaint (bridge/editjob.py) run the same functions:
`edit_spec` reads the edit's parameter, `plan_edit` checks it against the source and the model
before any sampling, `make_edit` makes the takes and `write_edit` writes each one.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pedalboard.io import AudioFile

from n2m.bridge.cascade import Edit
from n2m.bridge.clipfile import TMP_PREFIX, ClipFiles, slug
from n2m.bridge.controls import BARS_MAX, BEATS_PER_BAR
from n2m.bridge.loudness import integrated_loudness
from n2m.bridge.manifest import ModelError
from n2m.bridge.modelpath import DEFAULT_MODEL
from n2m.bridge.outdir import OutDirError, usable_dir
from n2m.bridge.pipeline import FORMATS, resample
from n2m.bridge.request import EDITS, Request, RequestError, from_options, number, whole
from n2m.bridge.tempo import estimate_tempo, flux_frame, spectral_flux

LOSSLESS = {".wav": "wav24", ".flac": "flac", ".aif": "aiff", ".aiff": "aiff"}  # a source's format kept
WRITERS = {**FORMATS, "aiff": (".aiff", 24)}  # format -> (suffix, bit depth) of a result
SOURCE_SUFFIXES = (*LOSSLESS, ".mp3")  # files an edit takes as its source
FADE_S = 0.005  # the new part's fade-in where it joins the source


@dataclass
class Source:
    path: Path
    audio: np.ndarray  # float32 [channels, samples]
    rate: int
    meta: dict = field(default_factory=dict)  # its n2m sidecar, when there is one

    @property
    def seconds(self) -> float:
        return self.audio.shape[1] / self.rate


@dataclass(frozen=True)
class EditSpec:
    """One edit: a variation at `strength`, `bars` added, or bars `first`-`last` made anew."""

    kind: str  # one of EDITS
    bars: int | None = None
    first: int | None = None
    last: int | None = None
    strength: float | None = None

    def meta(self) -> dict:
        """The edit as the result's sidecar names it."""
        if self.kind == "vary":
            return {"edit": "vary", "strength": self.strength}
        if self.kind == "inpaint":
            return {"edit": "inpaint", "bars": [self.first, self.last]}
        return {"edit": "extend", "bars": self.bars}


def read_source(path: str | Path, max_seconds: float | None = None) -> Source:
    """The file's audio and sidecar, or RequestError saying why it cannot be used (a file longer
    than `max_seconds` is refused from its header, before its audio is read)."""
    p = Path(path)
    if not p.is_file():
        raise RequestError(f"{p}: no such file")
    try:
        with AudioFile(str(p)) as f:
            rate, frames = int(f.samplerate), int(f.frames)
            long = max_seconds is not None and frames / rate > max_seconds + 1e-3
            audio = np.zeros((1, 0), np.float32) if long else f.read(frames).astype(np.float32)
    except Exception as exc:  # noqa: BLE001 - pedalboard raises several types for unreadable audio
        raise RequestError(f"{p}: not audio pedalboard can read ({str(exc).splitlines()[0] if str(exc) else exc})") from None
    if long:
        raise RequestError(f"{p}: the clip lasts {frames / rate:.1f} s, more than this model's {max_seconds:g} s")
    if audio.size == 0:
        raise RequestError(f"{p}: the file holds no audio")
    side = p.with_name(p.name + ".json")
    meta = {}
    if side.is_file():
        try:
            meta = json.loads(side.read_text())
        except (OSError, ValueError):
            meta = {}
    return Source(p, audio, rate, meta if isinstance(meta, dict) else {})


def source_options(src: Source, prompt: str | None, bpm: float | None, key: str | None) -> dict:
    """Request options for an edit: the prompt, tempo and key given, else the sidecar's, else the
    measured tempo (free time when none can be measured)."""
    ctl = src.meta.get("controls") if isinstance(src.meta.get("controls"), dict) else {}
    tempo = bpm or src.meta.get("bpm") or ctl.get("bpm")
    if not tempo:
        tempo = estimate_tempo(src.audio.mean(axis=0), src.rate)[0]
    return {"prompt": prompt or src.meta.get("prompt") or "music", "bpm": round(float(tempo), 2) if tempo else None,
            "key": key or ctl.get("key"), "mode": None if key else ctl.get("mode"), "meter": ctl.get("meter")}


def _bar_seconds(bpm: float | None, meter: str | None) -> float:
    if not bpm:
        raise RequestError("the tempo is unknown (no sidecar tempo and none measurable): give it "
                           "(--bpm, or bpm= over OSC)")
    if (meter or "4/4") not in BEATS_PER_BAR:
        raise RequestError(f"meter {meter!r} not supported: one of {', '.join(BEATS_PER_BAR)}")
    return BEATS_PER_BAR[meter or "4/4"] * 60.0 / float(bpm)


def whole_bars(seconds: float, bpm: float | None, meter: str | None) -> int | None:
    """How many bars `seconds` holds at the tempo, when that is a whole number (within 5 ms)."""
    if not bpm or (meter or "4/4") not in BEATS_PER_BAR:
        return None
    bar = _bar_seconds(bpm, meter)
    n = round(seconds / bar)
    return int(n) if n >= 1 and abs(seconds - n * bar) < 0.005 else None


def _match_gain(new: np.ndarray, rate: int, reference: np.ndarray) -> float:
    """The gain that brings `new` to the loudness of `reference` (same rate, [n] or [channels, n]),
    lowered where it would lift a peak above 0.98."""
    want, got = integrated_loudness(reference, rate), integrated_loudness(new, rate)
    gain = 10.0 ** ((want - got) / 20.0) if np.isfinite(want) and np.isfinite(got) else 1.0
    peak = float(np.abs(new).max()) * gain if new.size else 0.0
    return gain * (0.98 / peak) if peak > 0.98 else gain


def _matched(new: np.ndarray, rate: int, reference: np.ndarray) -> np.ndarray:
    """`new` at the loudness of `reference` (same rate, [n] or [channels, n]), peaks below 0.98."""
    return (new * _match_gain(new, rate, reference)).astype(np.float32)


def _as_source(audio: np.ndarray, rate: int, src: Source) -> np.ndarray:
    """Model audio (mono [n] or [channels, n] at `rate`) as [source channels, m] at the source's
    rate: mono is spread to every channel, stereo folded to mono for a mono source."""
    y = resample(audio, rate, src.rate)
    y = y[None] if y.ndim == 1 else y
    if y.shape[0] != src.audio.shape[0]:
        y = np.repeat(y.mean(axis=0, keepdims=True), src.audio.shape[0], axis=0)
    return y.astype(np.float32)


def parse_bars(text: str, what: str = "--bars") -> tuple[int, int]:
    """'3-4' -> (3, 4); '5' -> (5, 5); 1-based and inclusive."""
    a, _, b = str(text).partition("-")
    try:
        first, last = int(a), int(b or a)
    except ValueError:
        raise RequestError(f"{what} {text!r}: write a range of bars such as 3-4") from None
    if not 1 <= first <= last:
        raise RequestError(f"{what} {text!r}: bars count from 1 and the range must not run backwards")
    return first, last


def edit_spec(kind: str, value: object, what: str) -> EditSpec:
    """The edit from its one parameter as given (strength, bars to add, or a range A-B), or
    RequestError naming it as `what` (the CLI's flag or the OSC key)."""
    if kind == "vary":
        s = number(value, what)
        if not 0.0 < s <= 1.0:
            raise RequestError(f"{what} must be in (0, 1] (0 = the source, 1 = a new clip), got {s:g}")
        return EditSpec("vary", strength=s)
    if kind == "inpaint":
        first, last = parse_bars(str(value), what)
        return EditSpec("inpaint", first=first, last=last)
    if kind != "extend":
        raise RequestError(f"unknown edit {kind!r}: one of {', '.join(EDITS)}")
    n = whole(value, what)
    if not 1 <= n <= BARS_MAX:
        raise RequestError(f"{what} must be from 1 to {BARS_MAX}, got {n}")
    return EditSpec("extend", bars=n)


def plan_edit(engine, src: Source, options: dict, spec: EditSpec) -> Request:
    """The request an edit runs, checked against the source, the options and the model before any
    sampling (RequestError says why not), so that a daemon refuses a bad edit up front."""
    man = engine.manifest
    if man.route == "wave":  # the engine refuses it too, but only once the job runs
        raise RequestError(f"edits work in a log-mel generator's space; this model's route is {man.route}")
    lo, hi = man.controls.seconds_range
    bpm, meter = options.get("bpm"), options.get("meter")
    if bpm and src.seconds < _bar_seconds(bpm, meter) - 1e-3:
        raise RequestError(f"{src.path.name} lasts {src.seconds:.2f} s, under one bar ({_bar_seconds(bpm, meter):.2f} s "
                           f"at {float(bpm):g} bpm): an edit needs at least one bar")
    seconds = src.seconds
    if spec.kind == "extend":
        new_s = spec.bars * _bar_seconds(bpm, meter)
        seconds = src.seconds + new_s
        if seconds > hi:
            raise RequestError(f"{src.seconds:.1f} s and {spec.bars} bars ({new_s:.1f} s) make {seconds:.1f} s: more "
                               f"than this model's {hi:g} s; ask for fewer bars")
    elif spec.kind == "inpaint" and spec.last * _bar_seconds(bpm, meter) > src.seconds + 1e-3:
        raise RequestError(f"bars {spec.first}-{spec.last} end at {spec.last * _bar_seconds(bpm, meter):.2f} s, "
                           f"after the clip's end at {src.seconds:.2f} s")
    if spec.kind != "extend" and src.seconds > hi:
        raise RequestError(f"the clip lasts {src.seconds:.1f} s: more than this model's {hi:g} s")
    takes = {} if spec.kind == "vary" else {"variations": 1}
    req = from_options({**options, **takes, "seconds": round(max(seconds, lo), 3)})
    engine.check(req, edit=True)
    return req


def vary(engine, src: Source, options: dict, strength: float, progress=None, cancel=None) -> list[np.ndarray]:
    """Variations of the source: [channels, samples] at its rate, one per take."""
    req = plan_edit(engine, src, options, EditSpec("vary", strength=strength))
    clips = engine.generate(req, progress, cancel, edit=Edit(engine.features(src.audio, src.rate), None, strength))
    n = src.audio.shape[1]
    out = []
    for c in clips:
        y = _matched(_as_source(c.audio, c.sample_rate, src), src.rate, src.audio)
        out.append(np.pad(y, ((0, 0), (0, max(0, n - y.shape[1]))))[:, :n])
    return out


def extend(engine, src: Source, options: dict, bars: int, progress=None, cancel=None) -> np.ndarray:
    """The source followed by `bars` new bars: [channels, samples] at its rate, the source's own
    samples first, untouched."""
    req = plan_edit(engine, src, options, EditSpec("extend", bars=bars))
    new_s = bars * _bar_seconds(options.get("bpm"), options.get("meter"))
    mel = engine.features(src.audio, src.rate)
    clip = engine.generate(req, progress, cancel, edit=Edit(mel, np.ones(mel.shape[1], bool), 1.0))[0]
    n_new = int(round(new_s * src.rate))
    start = int(round(src.seconds * clip.sample_rate))
    y = _as_source(clip.audio[..., start:], clip.sample_rate, src)
    y = np.pad(y, ((0, 0), (0, max(0, n_new - y.shape[1]))))[:, :n_new]
    y = _matched(y, src.rate, src.audio[:, -min(src.audio.shape[1], n_new):])
    fade = min(n_new, int(FADE_S * src.rate))
    y[:, :fade] *= np.linspace(0.0, 1.0, fade, dtype=np.float32)
    return np.concatenate([src.audio, y], axis=1)


def inpaint(engine, src: Source, options: dict, first: int, last: int, progress=None, cancel=None) -> np.ndarray:
    """The source with bars first..last made anew: [channels, samples] at its rate, every sample
    outside the region and its joins' crossfades (at most JOIN_OUTSIDE_S) the source's own."""
    req = plan_edit(engine, src, options, EditSpec("inpaint", first=first, last=last))
    bar = _bar_seconds(options.get("bpm"), options.get("meter"))
    t0, t1 = (first - 1) * bar, last * bar
    mel = engine.features(src.audio, src.rate)
    frames = np.arange(mel.shape[1]) / engine.manifest.frame_rate
    clip = engine.generate(req, progress, cancel, edit=Edit(mel, (frames < t0) | (frames >= t1), 1.0))[0]
    n = src.audio.shape[1]
    a, b = int(round(t0 * src.rate)), min(n, int(round(t1 * src.rate)))
    new = _as_source(clip.audio, clip.sample_rate, src)
    new = np.pad(new, ((0, 0), (0, max(0, n - new.shape[1]))))[:, :n]
    new = new * _match_gain(new[:, a:b], src.rate, src.audio[:, a:b])  # the region at the source's loudness
    w = np.zeros(n, np.float64)
    w[a:b] = 1.0
    for at, rising in ((a, True), (b, False)):
        if 0 < at < n:
            w = min((_with_fade(w, at, rising, place, length, src.rate) for place, length in JOIN_FADES),
                    key=lambda cand: _join_flux(_mix(src.audio, new, cand), src.rate, at))
    return _mix(src.audio, new, w)


JOIN_OUTSIDE_S = 0.045  # the most a join's crossfade takes outside the region
JOIN_FADES = (("outside", JOIN_OUTSIDE_S), ("inside", 0.04), ("inside", 0.08), ("inside", 0.15))
JOIN_WINDOW_S = 0.05  # a join's abruptness: the spectral flux's peak within this distance of it


def _with_fade(w: np.ndarray, at: int, rising: bool, place: str, seconds: float, rate: int) -> np.ndarray:
    """The new audio's weight `w` with an equal-power fade at the join `at` (in where the region
    starts, out where it ends), lying just outside the region or just inside it."""
    m = int(round(seconds * rate))
    start = (at - m if place == "outside" else at) if rising else (at if place == "outside" else at - m)
    ramp = np.sin(0.5 * np.pi * (np.arange(m) + 0.5) / m)
    idx = np.arange(start, start + m)
    keep = (idx >= 0) & (idx < len(w))
    w = w.copy()
    w[idx[keep]] = (ramp if rising else ramp[::-1])[keep]
    return w


def _mix(src: np.ndarray, new: np.ndarray, w: np.ndarray) -> np.ndarray:
    """src where w is 0 (its own samples), new where it is 1, equal-power between."""
    out = src.copy()
    span = np.flatnonzero(w > 0)
    if span.size:
        lo, hi = int(span[0]), int(span[-1]) + 1
        ww = w[lo:hi]
        out[:, lo:hi] = (src[:, lo:hi] * np.sqrt(np.clip(1.0 - ww * ww, 0.0, 1.0)) + new[:, lo:hi] * ww).astype(np.float32)
    return out


def _join_flux(y: np.ndarray, rate: int, at: int) -> float:
    """How abrupt `y` is at sample `at`: the peak of bridge.tempo's spectral flux of the mono mix
    over frames centred every hop within JOIN_WINDOW_S of it."""
    hop, n_fft = flux_frame(rate)
    k = int(np.ceil(JOIN_WINDOW_S * rate / hop))
    pad = (k + 1) * hop + n_fft  # silence either side: a join near either end still has its frames
    first = pad + at - (k + 1) * hop - n_fft // 2  # frames centred at at + j * hop, |j| <= k + 1
    x = np.pad(y.mean(axis=0), (pad, pad))[first:first + (2 * k + 2) * hop + n_fft]
    return float(spectral_flux(x, rate).max())


def make_edit(engine, src: Source, options: dict, spec: EditSpec, progress=None, cancel=None) -> list[np.ndarray]:
    """The edit's takes ([channels, samples] at the source's rate): one, or `variations` of a vary."""
    if spec.kind == "vary":
        return vary(engine, src, options, spec.strength, progress, cancel)
    if spec.kind == "inpaint":
        return [inpaint(engine, src, options, spec.first, spec.last, progress, cancel)]
    return [extend(engine, src, options, spec.bars, progress, cancel)]


def edit_meta(spec: EditSpec, options: dict, index: int, model_id: str) -> dict:
    """What take `index` of an edit's sidecar says of it: the edit, the options, its seed, the model."""
    controls = {k: options.get(k) for k in ("bpm", "key", "mode", "meter")}
    return {**spec.meta(), **options, "seed": options["seed"] + index, "model_id": model_id, "controls": controls,
            "index": index}


def write_edit(audio: np.ndarray, src: Source, out_dir: Path, what: str, meta: dict,
               fmt: str | None = None) -> ClipFiles:
    """The result beside a JSON sidecar naming the source, written to a temporary name and renamed;
    in `fmt` (a key of WRITERS), else the source's lossless format, else 24-bit WAV."""
    fmt = fmt or LOSSLESS.get(src.path.suffix.lower(), "wav24")
    ext, bit_depth = WRITERS[fmt]
    created = time.time()
    name = re.sub(r"^\d{8}-\d{6}-", "", src.path.stem)  # a clip's own time stamp, not twice
    stem = f"{time.strftime('%Y%m%d-%H%M%S', time.localtime(created))}-{slug(name)}-{what}"
    path = out_dir / f"{stem}{ext}"
    k = 1
    while path.exists():
        k += 1
        path = out_dir / f"{stem}-{k}{ext}"
    seconds = audio.shape[1] / src.rate
    meta = {**meta, "source": str(src.path), "path": str(path), "sample_rate": src.rate, "channels": audio.shape[0],
            "duration": round(seconds, 6), "format": fmt, "bit_depth": bit_depth, "created": created,
            "length_bars": whole_bars(seconds, meta.get("bpm"), meta.get("meter"))}
    tmp = out_dir / f"{TMP_PREFIX}{path.name}"  # the prefix recovery clears and nothing lists
    with AudioFile(str(tmp), "w", float(src.rate), audio.shape[0], bit_depth=bit_depth) as f:
        f.write(audio.astype(np.float32))
    side = path.with_name(path.name + ".json")
    side_tmp = out_dir / f"{TMP_PREFIX}{side.name}"
    side_tmp.write_text(json.dumps(meta, indent=1))
    tmp.replace(path)
    side_tmp.replace(side)
    return ClipFiles(path, side, meta)


def _parser(name: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"n2m {name}", description=__doc__.split("\n\n")[0])
    p.add_argument("file", help="the source clip (WAV, FLAC, AIFF, MP3)")
    p.add_argument("prompt", nargs="?", help="what the new audio should be (default: the source's prompt)")
    p.add_argument("--bpm", type=float, help="the source's tempo (default: its sidecar's, else measured)")
    p.add_argument("--key", help="the key (default: the source's)")
    p.add_argument("--seed", type=int, help="random seed (default: random)")
    p.add_argument("--out", default=".", help="output folder (default: current folder)")
    p.add_argument("--model", default=DEFAULT_MODEL, help="model name under bridge/models/ or a folder")
    p.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    return p


def main(argv: list[str] | None = None, name: str = "vary") -> int:
    p = _parser(name)
    if name == "vary":
        p.add_argument("--strength", type=float, required=True, help="0 = the source, 1 = a new clip")
        p.add_argument("--variations", type=int, default=1, help="takes")
    elif name == "extend":
        p.add_argument("--bars", type=int, required=True, help="bars to add after the source")
    else:
        p.add_argument("--bars", required=True, help="the bars to replace, A-B (1-based, inclusive)")
    args = p.parse_args(argv)
    try:
        out_dir = usable_dir(args.out, "--out")
        src = read_source(args.file)
        spec = edit_spec(name, args.strength, "--strength") if name == "vary" else edit_spec(name, args.bars, "--bars")
        from n2m.bridge.generate import load_engine

        engine = load_engine(args.model, "cpu", args.threads)
        options = {**source_options(src, args.prompt, args.bpm, args.key),
                   "seed": args.seed if args.seed is not None else secrets.randbelow(2**31)}
        if name == "vary":
            options["variations"] = args.variations
        results = make_edit(engine, src, options, spec)
    except (RequestError, OutDirError, ModelError, ValueError) as exc:
        print(f"n2m {name}: {exc}", file=sys.stderr)
        return 3 if isinstance(exc, ModelError) else 2
    for i, audio in enumerate(results):
        print(write_edit(audio, src, out_dir, f"{name}{i + 1}", edit_meta(spec, options, i, engine.model_id)).audio)
    return 0


def main_extend(argv: list[str] | None = None) -> int:
    return main(argv, "extend")


def main_inpaint(argv: list[str] | None = None) -> int:
    return main(argv, "inpaint")
