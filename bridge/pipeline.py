"""The clip pipeline: a generated clip -> a tempo-true, bar-exact, loudness-normalised file.

    processed = process_clip(clip, PipelineOptions(bpm=92, bars=8, loop=True, sample_rate=48000))
    files = write_clip(processed, out_dir)          # ClipFiles(audio, sidecar, metadata)

Steps (pedalboard + numpy only):
1. Tempo: measure the generated tempo (onset-strength autocorrelation), pick the octave (x0.5,
   x1, x2) nearest the requested tempo, and time-stretch by the small ratio left
   (pedalboard.time_stretch, Rubber Band), if it is within `max_stretch`.
2. Resample to the DAW's rate (pedalboard StreamResampler, windowed sinc).
3. Length: exactly round(bars * beats_per_bar * 60 / bpm * sr) samples. Longer audio is cut;
   shorter audio is extended by looping it with crossfades. Loop mode folds the audio after the
   last bar line back over the first samples (equal-power crossfade), so the end joins the start.
4. Fades (one-shots only: a loop keeps its seam).
5. Loudness normalisation (BS.1770-4, default -14 LUFS) and a true-peak limiter (-1 dBTP),
   both circular in loop mode (n2m.bridge.loudness).
6. write_clip: 24-bit WAV (default), 32-bit float WAV or FLAC; prompt, seed, controls and model id
   in the file (WAV LIST/INFO, FLAC Vorbis comments) and in a JSON sidecar; temp file + link, so
   names are unique, nothing is overwritten, and no partial file is ever visible.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
import time
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from pedalboard import time_stretch
from pedalboard.io import AudioFile, StreamResampler

from n2m.bridge.controls import BARS_MAX, BEATS_PER_BAR, BPM_MAX, BPM_MIN, Controls
from n2m.bridge.library import TMP_PREFIX
from n2m.bridge.loudness import integrated_loudness, normalize, to_db, true_peak

SAMPLE_RATES = (44100, 48000, 96000)
FORMATS = {"wav24": (".wav", 24), "wav32f": (".wav", 32), "flac": (".flac", 24)}


class PipelineError(ValueError):
    """Options the pipeline cannot honour; the message says why."""


class ClipLike(Protocol):
    """What the pipeline needs of a generated clip (n2m.bridge.engine.GeneratedClip has it)."""

    audio: np.ndarray
    sample_rate: int
    prompt: str
    controls: Controls
    seed: int
    index: int
    model_id: str
    steps: int
    guidance: float


@dataclass(frozen=True)
class PipelineOptions:
    bpm: float | None = None  # target tempo (the request's, else the DAW's); None = keep free time
    bars: int | None = None  # None: the whole number of bars nearest the generated length
    meter: str | None = None  # "4/4" when None
    loop: bool = False
    sample_rate: int = 48000
    format: str = "wav24"
    target_lufs: float = -14.0
    ceiling_dbtp: float = -1.0
    stretch: bool = True
    max_stretch: float = 0.12  # largest |ratio - 1| applied; beyond it the tempo is left alone
    crossfade_ms: float = 25.0  # loop seam and loop extension
    fade_in_ms: float = 3.0
    fade_out_ms: float = 30.0

    def validated(self) -> PipelineOptions:
        if self.sample_rate not in SAMPLE_RATES:
            raise PipelineError(f"sample rate {self.sample_rate} not supported: one of {SAMPLE_RATES}")
        if self.format not in FORMATS:
            raise PipelineError(f"format {self.format!r} not supported: one of {', '.join(FORMATS)}")
        if self.meter is not None and self.meter not in BEATS_PER_BAR:
            raise PipelineError(f"meter {self.meter!r} not supported: one of {', '.join(BEATS_PER_BAR)}")
        if self.bpm is not None and not (math.isfinite(self.bpm) and BPM_MIN <= self.bpm <= BPM_MAX):
            raise PipelineError(f"bpm {self.bpm!r} out of range {BPM_MIN:g}-{BPM_MAX:g}")
        if self.bars is not None and not 1 <= self.bars <= BARS_MAX:
            raise PipelineError(f"bars {self.bars!r} out of range 1-{BARS_MAX}")
        if not (math.isfinite(self.target_lufs) and -60.0 <= self.target_lufs <= 0.0):
            raise PipelineError(f"loudness target {self.target_lufs!r} out of range -60..0 LUFS")
        if not (math.isfinite(self.ceiling_dbtp) and -20.0 <= self.ceiling_dbtp <= 0.0):
            raise PipelineError(f"true-peak ceiling {self.ceiling_dbtp!r} out of range -20..0 dBTP")
        return self


@dataclass(frozen=True)
class ProcessedClip:
    audio: np.ndarray  # float32 mono
    sample_rate: int
    bpm: float | None
    bars: int | None
    meter: str
    loop: bool
    format: str
    measured_bpm: float | None
    stretch_ratio: float
    loudness_lufs: float
    true_peak_dbtp: float
    prompt: str
    controls: dict[str, Any]
    seed: int | None
    index: int
    model_id: str
    steps: int | None
    guidance: float | None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate

    def metadata(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k != "audio"}
        d["duration"] = self.duration
        d["samples"] = len(self.audio)
        d["notes"] = list(self.notes)
        return d


@dataclass(frozen=True)
class ClipFiles:
    audio: Path
    sidecar: Path
    metadata: dict[str, Any]


# -- tempo -----------------------------------------------------------------------------------------
def onset_strength(x: np.ndarray, sr: int, fps: float = 200.0) -> tuple[np.ndarray, float]:
    """Spectral flux of the log magnitude (half-wave rectified), at about `fps` frames per second."""
    hop = max(1, int(round(sr / fps)))
    n_fft = 1 << int(math.ceil(math.log2(max(sr * 0.032, 64))))
    x = np.asarray(x, dtype=np.float32)
    if len(x) < n_fft + hop:
        return np.zeros(0), sr / hop
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop]
    mag = np.abs(np.fft.rfft(frames * np.hanning(n_fft).astype(np.float32), axis=1))
    logmag = np.log1p(100.0 * mag)
    flux = np.maximum(0.0, np.diff(logmag, axis=0)).sum(axis=1)
    return flux - flux.mean(), sr / hop


def estimate_tempo(x: np.ndarray, sr: int, lo: float = 50.0, hi: float = 220.0) -> tuple[float | None, float]:
    """(bpm, confidence 0..1) from the autocorrelation of the onset strength; (None, 0) if none."""
    onset, fps = onset_strength(x, sr)
    if len(onset) < 4 * fps or not np.any(onset):
        return None, 0.0
    n = 1 << int(math.ceil(math.log2(2 * len(onset))))
    spec = np.fft.rfft(onset, n)
    ac = np.fft.irfft(spec * np.conj(spec), n)[: len(onset)]
    if ac[0] <= 0:
        return None, 0.0
    ac = ac / ac[0]
    lags = np.arange(len(ac), dtype=np.float64)
    lag_lo, lag_hi = int(fps * 60.0 / hi), min(int(fps * 60.0 / lo) + 1, len(ac) - 2)
    if lag_hi <= lag_lo + 2:
        return None, 0.0
    with np.errstate(divide="ignore"):
        bpm_of_lag = 60.0 * fps / np.maximum(lags, 1e-9)
    prior = np.exp(-0.5 * (np.log2(bpm_of_lag / 120.0) / 1.0) ** 2)  # mild preference near 120
    score = np.where((lags >= lag_lo) & (lags <= lag_hi), np.maximum(ac, 0.0) * prior, -1.0)
    k = int(np.argmax(score))
    if score[k] <= 0:
        return None, 0.0
    a, b, c = ac[k - 1], ac[k], ac[k + 1]  # parabolic refinement of the peak lag
    denom = a - 2 * b + c
    shift = 0.5 * (a - c) / denom if denom < 0 else 0.0
    return 60.0 * fps / (k + float(np.clip(shift, -0.5, 0.5))), float(max(0.0, min(1.0, b)))


def stretch_ratio(measured: float | None, target: float, max_stretch: float) -> tuple[float, str]:
    """pedalboard's stretch factor (>1 = faster) for the octave of `measured` nearest `target`."""
    if measured is None:
        return 1.0, "tempo not measurable: not stretched"
    best = min((measured * m for m in (0.5, 1.0, 2.0)), key=lambda c: abs(math.log(target / c)))
    ratio = target / best
    if abs(ratio - 1.0) > max_stretch:
        return 1.0, f"measured {measured:.1f} bpm is too far from {target:g} bpm to stretch"
    return ratio, f"measured {measured:.1f} bpm, stretched x{ratio:.4f}"


# -- length and loops ------------------------------------------------------------------------------
def _fades(n: int) -> tuple[np.ndarray, np.ndarray]:
    t = (np.arange(n, dtype=np.float64) + 0.5) / n
    return np.sin(0.5 * np.pi * t), np.cos(0.5 * np.pi * t)  # equal power: fade in, fade out


def crossfade_concat(a: np.ndarray, b: np.ndarray, xf: int) -> np.ndarray:
    fi, fo = _fades(xf)
    return np.concatenate([a[:-xf], a[-xf:] * fo + b[:xf] * fi, b[xf:]])


def extend(x: np.ndarray, n: int, xf: int) -> np.ndarray:
    """At least n samples: x repeated with crossfades at the joins."""
    if len(x) >= n:
        return x
    if len(x) <= 2 * xf:
        raise PipelineError(f"clip of {len(x)} samples is too short to loop")
    y = x
    for _ in range(10_000):
        if len(y) >= n:
            break
        y = crossfade_concat(y, x, xf)
    return y


def make_loop(x: np.ndarray, n: int, xf: int) -> np.ndarray:
    """Exactly n samples whose end joins their start: what follows sample n is faded over the head."""
    y = extend(x, n + xf, xf)
    out = y[:n].copy()
    fi, fo = _fades(xf)
    out[:xf] = y[:xf] * fi + y[n : n + xf] * fo
    return out


def bar_samples(bars: int, bpm: float, meter: str | None, sr: int) -> int:
    return int(round(bars * BEATS_PER_BAR[meter or "4/4"] * 60.0 / bpm * sr))


def seam_click_ratio(audio: np.ndarray, guard: int = 96) -> float:
    """Click metric of a loop's seam: the largest |second difference| across the wrap (end -> start)
    divided by the largest |second difference| anywhere else in the loop (`guard` samples either
    side of the seam excluded). <= 1: the seam is no sharper than the music itself; a cut through a
    sustained tone gives >> 1."""
    x = np.asarray(audio, dtype=np.float64)
    circ = np.concatenate([x[-2:], x[:2]])
    seam = float(np.max(np.abs(np.diff(circ, 2))))
    inner = np.abs(np.diff(x[guard : len(x) - guard], 2))
    ref = float(inner.max()) if len(inner) else 0.0
    return seam / ref if ref > 0 else math.inf


# -- the pipeline ---------------------------------------------------------------------------------
def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    if sr_in == sr_out:
        return np.asarray(x, dtype=np.float32)
    r = StreamResampler(float(sr_in), float(sr_out), 1)
    a = r.process(np.asarray(x, dtype=np.float32)[None, :])
    b = r.process(None)
    y = np.concatenate([a, b], axis=1)[0]
    want = int(round(len(x) * sr_out / sr_in))
    return y[:want] if len(y) >= want else np.pad(y, (0, want - len(y)))


def _controls_dict(c: Any) -> dict[str, Any]:
    if c is None:
        return {}
    if is_dataclass(c):
        return asdict(c)
    return dict(c)


def process_clip(clip: ClipLike, options: PipelineOptions) -> ProcessedClip:
    opts = options.validated()
    x = np.asarray(clip.audio, dtype=np.float32).reshape(-1)
    if not len(x) or not np.all(np.isfinite(x)):
        raise PipelineError("the generated audio is empty or not finite")
    sr0 = int(clip.sample_rate)
    notes: list[str] = []
    measured, ratio = None, 1.0
    if opts.bpm is not None and opts.stretch:
        measured, conf = estimate_tempo(x, sr0)
        ratio, note = stretch_ratio(measured, opts.bpm, opts.max_stretch)
        notes.append(note)
        if abs(ratio - 1.0) > 1e-3:
            x = time_stretch(x[None, :], float(sr0), stretch_factor=ratio)[0]
        else:
            ratio = 1.0
    sr = opts.sample_rate
    y = resample(x, sr0, sr).astype(np.float64)
    xf = max(8, int(sr * opts.crossfade_ms / 1000.0))
    bars = opts.bars
    if opts.bpm is not None:
        if bars is None:
            per_bar = BEATS_PER_BAR[opts.meter or "4/4"] * 60.0 / opts.bpm
            bars = max(1, int(round(len(y) / sr / per_bar)))
        n = bar_samples(bars, opts.bpm, opts.meter, sr)
    else:
        bars = None
        n = len(y)
    if opts.loop:
        y = make_loop(y, n, xf)
    else:
        y = extend(y, n, xf)[:n]
        fin, fout = int(sr * opts.fade_in_ms / 1000.0), int(sr * opts.fade_out_ms / 1000.0)
        if fin:
            y[:fin] *= np.linspace(0.0, 1.0, fin)
        if fout:
            y[-fout:] *= np.linspace(1.0, 0.0, fout)
    res = normalize(y, sr, opts.target_lufs, opts.ceiling_dbtp, circular=opts.loop)
    if len(res.audio) != n:
        raise AssertionError(f"pipeline produced {len(res.audio)} samples, expected {n}")
    return ProcessedClip(
        audio=res.audio, sample_rate=sr, bpm=opts.bpm, bars=bars, meter=opts.meter or "4/4",
        loop=opts.loop, format=opts.format, measured_bpm=measured, stretch_ratio=ratio,
        loudness_lufs=res.loudness_lufs, true_peak_dbtp=res.true_peak_dbtp,
        prompt=str(clip.prompt), controls=_controls_dict(clip.controls), seed=clip.seed,
        index=int(getattr(clip, "index", 0)), model_id=str(clip.model_id),
        steps=getattr(clip, "steps", None), guidance=getattr(clip, "guidance", None), notes=tuple(notes))


# -- files ----------------------------------------------------------------------------------------
def slug(text: str, limit: int = 40) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return s[:limit].rstrip("-") or "clip"


def safe_name(name: str) -> str:
    """A file-name stem from a request, or PipelineError: no separators, no '..', no hidden names."""
    if not name or len(name) > 100 or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 _.,+-]*", name) or ".." in name:
        raise PipelineError(f"name {name!r} refused: use letters, digits, space, _ . , + - (no paths)")
    return name


def _riff_info(meta: dict[str, Any]) -> bytes:
    def sub(cid: bytes, text: str) -> bytes:
        data = text.encode("utf-8") + b"\0"
        return cid + struct.pack("<I", len(data)) + data + (b"\0" if len(data) & 1 else b"")

    summary = {k: meta.get(k) for k in ("prompt", "seed", "controls", "model_id", "bpm", "bars", "meter",
                                        "loop", "job_id", "index", "steps", "guidance")}
    body = b"INFO"
    body += sub(b"INAM", meta.get("prompt", ""))
    body += sub(b"ICMT", json.dumps(summary, sort_keys=True))
    body += sub(b"ISFT", f"n2m ({meta.get('model_id', '')})")
    body += sub(b"ICRD", time.strftime("%Y-%m-%d", time.gmtime(meta.get("created", time.time()))))
    body += sub(b"IKEY", f"seed={meta.get('seed')} bpm={meta.get('bpm')}")
    return b"LIST" + struct.pack("<I", len(body)) + body


def add_wav_info(path: Path, meta: dict[str, Any]) -> None:
    """Append a LIST/INFO chunk to a RIFF/WAVE file and fix the RIFF size."""
    data = bytearray(path.read_bytes())
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise PipelineError(f"{path} is not a RIFF/WAVE file")
    body_end = 8 + struct.unpack("<I", data[4:8])[0]
    del data[body_end:]
    if len(data) & 1:
        data += b"\0"
    data += _riff_info(meta)
    data[4:8] = struct.pack("<I", len(data) - 8)
    path.write_bytes(bytes(data))


def read_wav_info(path: str | os.PathLike[str]) -> dict[str, str]:
    """The LIST/INFO entries of a WAV file ({"INAM": ..., "ICMT": ...})."""
    d = Path(path).read_bytes()
    out: dict[str, str] = {}
    i = 12
    while i + 8 <= len(d):
        cid, n = d[i : i + 4], struct.unpack("<I", d[i + 4 : i + 8])[0]
        if cid == b"LIST" and d[i + 8 : i + 12] == b"INFO":
            j, end = i + 12, i + 8 + n
            while j + 8 <= end:
                sid, m = d[j : j + 4].decode("ascii", "replace"), struct.unpack("<I", d[j + 4 : j + 8])[0]
                out[sid] = d[j + 8 : j + 8 + m].rstrip(b"\0").decode("utf-8", "replace")
                j += 8 + m + (m & 1)
        i += 8 + n + (n & 1)
    return out


def _vorbis_comment(meta: dict[str, Any]) -> bytes:
    vendor = b"n2m"
    tags = {
        "TITLE": meta.get("prompt", ""), "DESCRIPTION": meta.get("prompt", ""),
        "COMMENT": json.dumps({k: meta.get(k) for k in ("seed", "controls", "model_id", "bpm", "bars")}, sort_keys=True),
        "N2M_PROMPT": meta.get("prompt", ""), "N2M_SEED": str(meta.get("seed")),
        "N2M_MODEL": str(meta.get("model_id", "")), "N2M_CONTROLS": json.dumps(meta.get("controls"), sort_keys=True),
        "BPM": "" if meta.get("bpm") is None else f"{meta['bpm']:g}", "ENCODER": "n2m",
    }
    body = struct.pack("<I", len(vendor)) + vendor + struct.pack("<I", len(tags))
    for k, v in tags.items():
        e = f"{k}={v}".encode()
        body += struct.pack("<I", len(e)) + e
    return body


def add_flac_comments(path: Path, meta: dict[str, Any]) -> None:
    """Replace the FLAC file's VORBIS_COMMENT block with n2m's tags (inserted after STREAMINFO)."""
    d = path.read_bytes()
    if d[:4] != b"fLaC":
        raise PipelineError(f"{path} is not a FLAC file")
    i, blocks = 4, []
    while True:
        hdr = d[i]
        n = int.from_bytes(d[i + 1 : i + 4], "big")
        blocks.append((hdr & 0x7F, d[i + 4 : i + 4 + n]))
        i += 4 + n
        if hdr & 0x80:
            break
    blocks = [b for b in blocks if b[0] != 4]
    blocks.insert(1, (4, _vorbis_comment(meta)))
    out = bytearray(b"fLaC")
    for k, (typ, body) in enumerate(blocks):
        out.append(typ | (0x80 if k == len(blocks) - 1 else 0))
        out += len(body).to_bytes(3, "big") + body
    path.write_bytes(bytes(out) + d[i:])


def read_flac_comments(path: str | os.PathLike[str]) -> dict[str, str]:
    d = Path(path).read_bytes()
    i, out = 4, {}
    while i < len(d):
        hdr, n = d[i], int.from_bytes(d[i + 1 : i + 4], "big")
        if hdr & 0x7F == 4:
            b = d[i + 4 : i + 4 + n]
            vl = struct.unpack("<I", b[:4])[0]
            j = 4 + vl
            count = struct.unpack("<I", b[j : j + 4])[0]
            j += 4
            for _ in range(count):
                m = struct.unpack("<I", b[j : j + 4])[0]
                k, _, v = b[j + 4 : j + 4 + m].decode().partition("=")
                out[k] = v
                j += 4 + m
        i += 4 + n
        if hdr & 0x80:
            break
    return out


def _publish(tmp: Path, stem: str, ext: str, out_dir: Path) -> Path:
    """Link tmp to the first free name stem[-k]ext (os.link never overwrites), then drop tmp."""
    for k in range(1, 1000):
        final = out_dir / (f"{stem}{ext}" if k == 1 else f"{stem}-{k}{ext}")
        try:
            os.link(tmp, final)
        except FileExistsError:
            continue
        tmp.unlink()
        return final
    raise PipelineError(f"no free file name for {stem}{ext} in {out_dir}")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_clip(processed: ProcessedClip, out_dir: str | os.PathLike[str], *, name: str | None = None,
               job_id: str | None = None) -> ClipFiles:
    """Write the audio (with metadata) and its JSON sidecar atomically under out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ext, bit_depth = FORMATS[processed.format]
    created = time.time()
    base = safe_name(name) if name else slug(processed.prompt)
    stem = f"{time.strftime('%Y%m%d-%H%M%S', time.localtime(created))}-{base}-s{processed.seed}"
    if job_id:
        stem += f"-{job_id}"
    if processed.index:
        stem += f"-v{processed.index}"
    meta = processed.metadata() | {"job_id": job_id, "created": created, "bit_depth": bit_depth}
    tmp = out / f"{TMP_PREFIX}{os.getpid()}-{time.monotonic_ns()}{ext}"
    try:
        with AudioFile(str(tmp), "w", float(processed.sample_rate), 1, bit_depth=bit_depth) as f:
            f.write(processed.audio[None, :].astype(np.float32))
        if ext == ".wav":
            add_wav_info(tmp, meta)
        else:
            add_flac_comments(tmp, meta)
        _fsync(tmp)
        audio_path = _publish(tmp, stem, ext, out)
    finally:
        tmp.unlink(missing_ok=True)
    meta["path"] = str(audio_path)
    side_tmp = out / f"{TMP_PREFIX}{os.getpid()}-{time.monotonic_ns()}.json"
    sidecar = audio_path.with_name(audio_path.name + ".json")
    try:
        side_tmp.write_text(json.dumps(meta, indent=1, sort_keys=True, default=str))
        _fsync(side_tmp)
        os.link(side_tmp, sidecar)
    finally:
        side_tmp.unlink(missing_ok=True)
    dfd = os.open(out, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    return ClipFiles(audio_path, sidecar, meta)


def measure_file(path: str | os.PathLike[str], circular: bool = False) -> dict[str, float]:
    """Read a written clip back: samples, rate, loudness and true peak (for tests and `n2m doctor`)."""
    with AudioFile(str(path)) as f:
        x = f.read(f.frames)[0]
        sr = int(f.samplerate)
    return {"samples": len(x), "sample_rate": sr,
            "loudness_lufs": integrated_loudness(x, sr, circular),
            "true_peak_dbtp": to_db(true_peak(x, circular))}
