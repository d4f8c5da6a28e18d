"""`n2m vary`, `n2m extend`, `n2m inpaint`: new audio made from a clip the producer already has.

    n2m vary clip.wav --strength 0.4 ["PROMPT"] [--variations K] --out DIR
    n2m extend clip.wav --bars 4 ["PROMPT"] --out DIR
    n2m inpaint clip.wav --bars 3-4 ["PROMPT"] --out DIR

FILE is any file pedalboard reads (WAV, FLAC, AIFF, MP3; any rate, mono or stereo). Its tempo comes
from --bpm, else its n2m sidecar, else is measured; its prompt and key likewise. The generator
works from the clip's log-mel (bridge.cascade.Edit): a variation starts from it noised to the
strength; an extension holds the clip's frames and makes the bars after them; an inpainting
holds every frame but those of bars A to B (1-based, inclusive) and crossfades the new bars in
over 20 ms inside the region. Results keep the
source's rate and channel count, in its format when that is lossless (24-bit WAV otherwise), with
the source named in the sidecar; an extension begins with the source's own samples, untouched,
and the new bars are matched to its loudness.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pedalboard.io import AudioFile

from n2m.bridge.cascade import Edit
from n2m.bridge.clipfile import TMP_PREFIX, slug
from n2m.bridge.controls import BEATS_PER_BAR
from n2m.bridge.loudness import integrated_loudness
from n2m.bridge.manifest import ModelError
from n2m.bridge.modelpath import DEFAULT_MODEL
from n2m.bridge.outdir import OutDirError, usable_dir
from n2m.bridge.pipeline import resample
from n2m.bridge.request import RequestError, from_options
from n2m.bridge.tempo import estimate_tempo

LOSSLESS = {".wav": "wav", ".flac": "flac", ".aif": "aiff", ".aiff": "aiff"}
FADE_S = 0.005  # the new part's fade-in where it joins the source
XFADE_S = 0.02  # an inpainted region's crossfades, inside the region


@dataclass
class Source:
    path: Path
    audio: np.ndarray  # float32 [channels, samples]
    rate: int
    meta: dict = field(default_factory=dict)  # its n2m sidecar, when there is one

    @property
    def seconds(self) -> float:
        return self.audio.shape[1] / self.rate

    def mono(self, rate: int) -> np.ndarray:
        return resample(self.audio.mean(axis=0), self.rate, rate)


def read_source(path: str | Path) -> Source:
    """The file's audio and sidecar, or RequestError saying why it cannot be used."""
    p = Path(path)
    if not p.is_file():
        raise RequestError(f"{p}: no such file")
    try:
        with AudioFile(str(p)) as f:
            audio, rate = f.read(f.frames).astype(np.float32), int(f.samplerate)
    except Exception as exc:  # noqa: BLE001 - pedalboard raises several types for unreadable audio
        raise RequestError(f"{p}: not audio pedalboard can read ({str(exc).splitlines()[0] if str(exc) else exc})") from None
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
        raise RequestError("the tempo is unknown: pass --bpm")
    return BEATS_PER_BAR[meter or "4/4"] * 60.0 / float(bpm)


def _matched(new: np.ndarray, rate: int, reference: np.ndarray) -> np.ndarray:
    """`new` at the loudness of `reference` (same rate, [n] or [channels, n]), peaks below 0.98."""
    want, got = integrated_loudness(reference, rate), integrated_loudness(new, rate)
    gain = 10.0 ** ((want - got) / 20.0) if np.isfinite(want) and np.isfinite(got) else 1.0
    y = new * gain
    peak = float(np.abs(y).max()) if y.size else 0.0
    return (y * (0.98 / peak) if peak > 0.98 else y).astype(np.float32)


def _as_source(audio: np.ndarray, rate: int, src: Source) -> np.ndarray:
    """Model audio (mono [n] or [channels, n] at `rate`) as [source channels, m] at the source's
    rate: mono is spread to every channel, stereo folded to mono for a mono source."""
    y = resample(audio, rate, src.rate)
    y = y[None] if y.ndim == 1 else y
    if y.shape[0] != src.audio.shape[0]:
        y = np.repeat(y.mean(axis=0, keepdims=True), src.audio.shape[0], axis=0)
    return y.astype(np.float32)


def vary(engine, src: Source, options: dict, strength: float) -> list[np.ndarray]:
    """Variations of the source: [channels, samples] at its rate, one per take."""
    req = from_options({**options, "seconds": round(min(src.seconds, 30.0), 3)})
    clips = engine.generate(req, edit=Edit(engine.features(src.audio, src.rate), None, strength))
    n = src.audio.shape[1]
    out = []
    for c in clips:
        y = _matched(_as_source(c.audio, c.sample_rate, src), src.rate, src.audio)
        out.append(np.pad(y, ((0, 0), (0, max(0, n - y.shape[1]))))[:, :n])
    return out


def extend(engine, src: Source, options: dict, bars: int) -> np.ndarray:
    """The source followed by `bars` new bars: [channels, samples] at its rate, the source's own
    samples first, untouched."""
    new_s = bars * _bar_seconds(options.get("bpm"), options.get("meter"))
    total = src.seconds + new_s
    lo, hi = engine.manifest.controls.seconds_range
    if total > hi:
        raise RequestError(f"{src.seconds:.1f} s and {bars} bars ({new_s:.1f} s) make {total:.1f} s: more than "
                           f"this model's {hi:g} s; ask for fewer bars")
    req = from_options({**options, "seconds": round(max(total, lo), 3), "variations": 1})
    mel = engine.features(src.audio, src.rate)
    clip = engine.generate(req, edit=Edit(mel, np.ones(mel.shape[1], bool), 1.0))[0]
    n_new = int(round(new_s * src.rate))
    start = int(round(src.seconds * clip.sample_rate))
    y = _as_source(clip.audio[..., start:], clip.sample_rate, src)
    y = np.pad(y, ((0, 0), (0, max(0, n_new - y.shape[1]))))[:, :n_new]
    y = _matched(y, src.rate, src.audio[:, -min(src.audio.shape[1], n_new):])
    fade = min(n_new, int(FADE_S * src.rate))
    y[:, :fade] *= np.linspace(0.0, 1.0, fade, dtype=np.float32)
    return np.concatenate([src.audio, y], axis=1)


def parse_bars(text: str) -> tuple[int, int]:
    """'3-4' -> (3, 4); '5' -> (5, 5); 1-based and inclusive."""
    a, _, b = str(text).partition("-")
    try:
        first, last = int(a), int(b or a)
    except ValueError:
        raise RequestError(f"--bars {text!r}: write a range of bars such as 3-4") from None
    if not 1 <= first <= last:
        raise RequestError(f"--bars {text!r}: bars count from 1 and the range must not run backwards")
    return first, last


def inpaint(engine, src: Source, options: dict, first: int, last: int) -> np.ndarray:
    """The source with bars first..last made anew: [channels, samples] at its rate, every sample
    outside the region the source's own."""
    bar = _bar_seconds(options.get("bpm"), options.get("meter"))
    t0, t1 = (first - 1) * bar, last * bar
    if t1 > src.seconds + 1e-3:
        raise RequestError(f"bars {first}-{last} end at {t1:.2f} s, after the clip's end at {src.seconds:.2f} s")
    if src.seconds > engine.manifest.controls.seconds_range[1]:
        raise RequestError(f"the clip lasts {src.seconds:.1f} s: more than this model's "
                           f"{engine.manifest.controls.seconds_range[1]:g} s")
    req = from_options({**options, "seconds": round(max(src.seconds, engine.manifest.controls.seconds_range[0]), 3),
                        "variations": 1})
    mel = engine.features(src.audio, src.rate)
    frames = np.arange(mel.shape[1]) / engine.manifest.frame_rate
    clip = engine.generate(req, edit=Edit(mel, (frames < t0) | (frames >= t1), 1.0))[0]
    a, b = int(round(t0 * src.rate)), min(src.audio.shape[1], int(round(t1 * src.rate)))
    new = _as_source(clip.audio, clip.sample_rate, src)
    new = np.pad(new, ((0, 0), (0, max(0, b - new.shape[1]))))[:, a:b]
    new = _matched(new, src.rate, src.audio[:, a:b])
    w = np.ones(b - a, np.float32)
    x = min((b - a) // 2, int(XFADE_S * src.rate))
    w[:x] = np.linspace(0.0, 1.0, x)
    if x:
        w[-x:] = np.linspace(1.0, 0.0, x)
    out = src.audio.copy()
    out[:, a:b] = out[:, a:b] * (1.0 - w) + new * w
    return out


def write_edit(audio: np.ndarray, src: Source, out_dir: Path, what: str, meta: dict) -> Path:
    """The result beside a JSON sidecar naming the source, written to a temporary name and renamed."""
    fmt = LOSSLESS.get(src.path.suffix.lower(), "wav")
    ext = ".aiff" if fmt == "aiff" else f".{fmt}"
    stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{slug(src.path.stem)}-{what}"
    path = out_dir / f"{stem}{ext}"
    k = 1
    while path.exists():
        k += 1
        path = out_dir / f"{stem}-{k}{ext}"
    tmp = out_dir / f"{TMP_PREFIX}{path.name}"  # the prefix recovery clears and nothing lists
    with AudioFile(str(tmp), "w", float(src.rate), audio.shape[0], bit_depth=24) as f:
        f.write(audio.astype(np.float32))
    side_tmp = out_dir / f"{TMP_PREFIX}{path.name}.json"
    side_tmp.write_text(json.dumps({**meta, "source": str(src.path)}, indent=1))
    tmp.replace(path)
    side_tmp.replace(path.with_name(path.name + ".json"))
    return path


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
        if name == "vary" and not 0.0 < args.strength <= 1.0:
            raise RequestError(f"--strength must be in (0, 1] (0 = the source, 1 = a new clip), got {args.strength:g}")
        if name == "extend" and not 1 <= args.bars <= 64:
            raise RequestError(f"--bars must be from 1 to 64, got {args.bars}")
        from n2m.bridge.generate import load_engine

        engine = load_engine(args.model, "cpu", args.threads)
        options = {**source_options(src, args.prompt, args.bpm, args.key),
                   "seed": args.seed if args.seed is not None else secrets.randbelow(2**31)}
        if name == "vary":
            results = vary(engine, src, {**options, "variations": args.variations}, args.strength)
            meta = {"edit": "vary", "strength": args.strength}
        elif name == "inpaint":
            first, last = parse_bars(args.bars)
            results = [inpaint(engine, src, options, first, last)]
            meta = {"edit": "inpaint", "bars": [first, last]}
        else:
            results = [extend(engine, src, options, args.bars)]
            meta = {"edit": "extend", "bars": args.bars}
    except (RequestError, OutDirError, ModelError, ValueError) as exc:
        print(f"n2m {name}: {exc}", file=sys.stderr)
        return 3 if isinstance(exc, ModelError) else 2
    for i, audio in enumerate(results):
        print(write_edit(audio, src, out_dir, f"{name}{i + 1}", {**meta, **options, "seed": options["seed"] + i,
                                                                "model_id": engine.model_id}))
    return 0


def main_extend(argv: list[str] | None = None) -> int:
    return main(argv, "extend")


def main_inpaint(argv: list[str] | None = None) -> int:
    return main(argv, "inpaint")
