"""The clip pipeline: a generated clip -> a tempo-true, bar-exact, loudness-normalised file.

    processed = process_clip(clip, PipelineOptions(bpm=92, bars=8, loop=True, sample_rate=48000))

Steps (pedalboard + numpy only):
1. Tempo: measure the generated tempo (onset-strength autocorrelation), pick the octave (x0.5,
   x1, x2) nearest the requested tempo, and time-stretch by the small ratio left
   (pedalboard.time_stretch, Rubber Band), if it is within `max_stretch`.
2. Resample to the DAW's rate (band-limited by the FFT, the length exact).
3. Length: exactly round(bars * beats_per_bar * 60 / bpm * sr) samples. Longer audio is cut;
   shorter audio is extended by looping it with crossfades. Loop mode folds the audio after the
   last bar line back over the first samples (equal-power crossfade), so the end joins the start.
4. Fades (one-shots only: a loop keeps its seam).
5. Loudness normalisation (BS.1770-4, default -14 LUFS) and a true-peak limiter (-1 dBTP),
   both circular in loop mode (n2m.bridge.loudness).
A loop the engine sampled periodic (`info["periodic"]`, bridge.periodic) is already tempo-true and
seamless: steps 1-4 become one periodic resampling to the exact samples at the DAW's rate, turned
by whole bars to start at its least abrupt bar line (a circle has no first bar); the crossfade is
for audio made elsewhere (or `loop_crossfade`).
Writing the result is bridge.clipfile's job (`write_clip`); tempo analysis is bridge.tempo's.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, is_dataclass, replace
from typing import Any, Protocol

import numpy as np
from pedalboard import time_stretch

from n2m.bridge.controls import BARS_MAX, BEATS_PER_BAR, BPM_MAX, BPM_MIN, Controls
from n2m.bridge.loudness import normalize
from n2m.bridge.periodic import resample_periodic
from n2m.bridge.resample import resample
from n2m.bridge.tempo import estimate_tempo, stretch_ratio

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
    loop_crossfade: bool = False  # loop by crossfading even a clip the engine could sample periodic
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
    audio: np.ndarray  # float32: mono [samples] or [channels, samples], as the model made it
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
    loop_seam: str | None = None  # a loop's: "periodic" (sampled so) or "crossfade" (tail over head)

    @property
    def samples(self) -> int:
        return int(self.audio.shape[-1])

    @property
    def channels(self) -> int:
        return 1 if self.audio.ndim == 1 else int(self.audio.shape[0])

    @property
    def duration(self) -> float:
        return self.samples / self.sample_rate

    def metadata(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k != "audio"}
        d["duration"] = self.duration
        d["samples"] = self.samples
        d["channels"] = self.channels
        d["notes"] = list(self.notes)
        return d


# -- length and loops ------------------------------------------------------------------------------
def _fades(n: int) -> tuple[np.ndarray, np.ndarray]:
    t = (np.arange(n, dtype=np.float64) + 0.5) / n
    return np.sin(0.5 * np.pi * t), np.cos(0.5 * np.pi * t)  # equal power: fade in, fade out


def crossfade_concat(a: np.ndarray, b: np.ndarray, xf: int) -> np.ndarray:
    """a then b (samples on the last axis), overlapped by xf samples with equal-power fades."""
    fi, fo = _fades(xf)
    return np.concatenate([a[..., :-xf], a[..., -xf:] * fo + b[..., :xf] * fi, b[..., xf:]], axis=-1)


def extend(x: np.ndarray, n: int, xf: int) -> np.ndarray:
    """At least n samples (on the last axis): x repeated with crossfades at the joins."""
    m = x.shape[-1]
    if m >= n:
        return x
    if m <= 2 * xf:
        raise PipelineError(f"clip of {m} samples is too short to loop")
    y = x
    for _ in range(10_000):
        if y.shape[-1] >= n:
            break
        y = crossfade_concat(y, x, xf)
    return y


def make_loop(x: np.ndarray, n: int, xf: int) -> np.ndarray:
    """Exactly n samples whose end joins their start: what follows sample n is faded over the head."""
    y = extend(x, n + xf, xf)
    out = y[..., :n].copy()
    fi, fo = _fades(xf)
    out[..., :xf] = y[..., :xf] * fi + y[..., n : n + xf] * fo
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


def seam_level_ratio(audio: np.ndarray, sr: int, window_s: float = 0.05) -> float:
    """A loop's level around its seam over its usual level: the RMS of the `window_s` either side of
    the seam (the end, then the start, as a loop plays) over the median of the same measure at every
    boundary between the loop's consecutive `window_s` windows. A fade or a crossfade's dip shows as
    well under 1; an attack at the seam, as at any bar line, above it. Channels are mixed first."""
    x = _mono(audio)
    w = max(1, int(round(window_s * sr)))
    power = np.mean(x[: len(x) // w * w].reshape(-1, w) ** 2, axis=1)
    usual = float(np.median(np.sqrt((power[:-1] + power[1:]) / 2.0)))
    seam = math.sqrt((float(np.mean(x[-w:] ** 2)) + float(np.mean(x[:w] ** 2))) / 2.0)
    return seam / usual if usual > 0 else math.inf


def bar_line_flux(audio: np.ndarray, sr: int, bars: int) -> np.ndarray:
    """[bars]: a loop's spectral flux at each of its bar lines, played twice (index 0: the seam):
    the mean rectified rise of the log-magnitude spectrum between ~43 ms Hann frames a quarter
    frame apart, its largest within half a frame of the line. Channels are mixed first."""
    if bars < 1:
        raise ValueError("a loop has at least one bar")
    n = _mono(audio).shape[0]
    x = np.tile(_mono(audio), 2)
    n_fft = 1 << int(round(math.log2(0.043 * sr)))
    hop = n_fft // 4
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop]
    mag = np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=1))
    spec = np.log(mag + 1e-3 * float(mag.max()) + 1e-12)
    flux = np.concatenate([[0.0], np.maximum(np.diff(spec, axis=0), 0.0).mean(axis=1)])
    centres = np.arange(len(flux)) * hop + n_fft // 2

    def at(sample: float) -> float:
        return float(flux[np.abs(centres - sample) <= n_fft // 2].max())

    return np.array([at(n)] + [at(k * n / bars) for k in range(1, bars)])


def seam_flux(audio: np.ndarray, sr: int, bars: int) -> tuple[float, float]:
    """(spectral flux at a loop's seam, the highest at its inner bar lines) by `bar_line_flux`: a
    seam no more abrupt than the music's own bar lines gives a first figure at most the second."""
    if bars < 2:
        raise ValueError("seam flux compares the seam with inner bar lines: it needs at least 2 bars")
    lines = bar_line_flux(audio, sr, bars)
    return float(lines[0]), float(lines[1:].max())


def smoothest_start(audio: np.ndarray, sr: int, bars: int) -> tuple[np.ndarray, int]:
    """(the loop turned to start at its least abrupt bar line, that line's index from 0): a loop
    sampled on a circle has no first bar of its own (bridge.periodic), so its file begins where the
    music changes least and the seam is never its most abrupt bar line."""
    if bars < 2:
        return audio, 0
    k = int(np.argmin(bar_line_flux(audio, sr, bars)))
    return (np.roll(audio, -int(round(k * audio.shape[-1] / bars)), axis=-1), k) if k else (audio, 0)


def _mono(audio: np.ndarray) -> np.ndarray:
    x = np.asarray(audio, dtype=np.float64)
    return x.mean(axis=0) if x.ndim > 1 else x


# -- the pipeline ---------------------------------------------------------------------------------
def _controls_dict(c: Any) -> dict[str, Any]:
    if c is None:
        return {}
    if is_dataclass(c):
        return asdict(c)
    return dict(c)


def process_clip(clip: ClipLike, options: PipelineOptions) -> ProcessedClip:
    """A generated clip through the pipeline: a periodic loop resampled round, anything else
    stretched to the tempo and cut to the bars, or crossfaded into a loop."""
    opts = options.validated()
    if opts.loop and not opts.loop_crossfade and bool((getattr(clip, "info", None) or {}).get("periodic")):
        return _periodic_loop(clip, opts)
    out = _processed(clip, opts)
    if not opts.loop:
        return out
    return replace(out, loop_seam="crossfade",
                   notes=(*out.notes, f"loop: the tail crossfaded over the head ({opts.crossfade_ms:g} ms)"))


def _periodic_loop(clip: ClipLike, opts: PipelineOptions) -> ProcessedClip:
    """A loop the engine sampled periodic: tempo-true and seamless as it is, so resampled round to
    the exact bar samples at the DAW's rate (bridge.periodic), no stretch, crossfade or fades."""
    x = np.asarray(clip.audio, dtype=np.float32)
    if not x.size or not np.all(np.isfinite(x)):
        raise PipelineError("the generated audio is empty or not finite")
    sr0, sr, m = int(clip.sample_rate), opts.sample_rate, x.shape[-1]
    bars, n = None, int(round(m * sr / sr0))
    if opts.bpm is not None:
        per_bar = BEATS_PER_BAR[opts.meter or "4/4"] * 60.0 / opts.bpm
        bars = opts.bars or max(1, int(round(m / sr0 / per_bar)))
        n = bar_samples(bars, opts.bpm, opts.meter, sr)
        if abs(n * sr0 / (m * sr) - 1.0) > 1e-3:
            raise PipelineError(f"a periodic loop of {m / sr0:.3f} s is not {bars} bars at {opts.bpm:g} bpm")
    y, first = smoothest_start(resample_periodic(x, n), sr, bars or 1)
    res = normalize(y.astype(np.float64), sr, opts.target_lufs, opts.ceiling_dbtp, circular=True)
    return ProcessedClip(
        audio=res.audio, sample_rate=sr, bpm=opts.bpm, bars=bars, meter=opts.meter or "4/4", loop=True,
        format=opts.format, measured_bpm=None, stretch_ratio=1.0, loudness_lufs=res.loudness_lufs,
        true_peak_dbtp=res.true_peak_dbtp, prompt=str(clip.prompt), controls=_controls_dict(clip.controls),
        seed=clip.seed, index=int(getattr(clip, "index", 0)), model_id=str(clip.model_id),
        steps=getattr(clip, "steps", None), guidance=getattr(clip, "guidance", None),
        notes=("periodic loop: tempo-true as sampled, no stretch, no crossfade"
               + (f"; starts at its smoothest bar line (bar {first + 1} of the circle)" if first else ""),),
        loop_seam="periodic")


def _processed(clip: ClipLike, options: PipelineOptions) -> ProcessedClip:
    opts = options.validated()
    mono = np.asarray(clip.audio).ndim == 1
    x = np.asarray(clip.audio, dtype=np.float32)
    x = x[None] if mono else x  # [channels, samples] from here on
    if x.ndim != 2 or not x.size or not np.all(np.isfinite(x)):
        raise PipelineError("the generated audio is empty or not finite")
    sr0 = int(clip.sample_rate)
    notes: list[str] = []
    measured, ratio = None, 1.0
    if opts.bpm is not None and opts.stretch:
        measured, conf = estimate_tempo(x.mean(axis=0), sr0)
        ratio, note = stretch_ratio(measured, opts.bpm, opts.max_stretch, opts.meter)
        notes.append(note)
        if abs(ratio - 1.0) > 1e-3:
            x = time_stretch(np.ascontiguousarray(x), float(sr0), stretch_factor=ratio)
        else:
            ratio = 1.0
    sr = opts.sample_rate
    y = resample(x, sr0, sr).astype(np.float64)
    xf = max(8, int(sr * opts.crossfade_ms / 1000.0))
    bars = opts.bars
    if opts.bpm is not None:
        if bars is None:
            per_bar = BEATS_PER_BAR[opts.meter or "4/4"] * 60.0 / opts.bpm
            bars = max(1, int(round(y.shape[1] / sr / per_bar)))
        n = bar_samples(bars, opts.bpm, opts.meter, sr)
    else:
        bars = None
        n = y.shape[1]
    if opts.loop:
        y = make_loop(y, n, xf)
    else:
        y = extend(y, n, xf)[:, :n]
        fin, fout = int(sr * opts.fade_in_ms / 1000.0), int(sr * opts.fade_out_ms / 1000.0)
        if fin:
            y[:, :fin] *= np.linspace(0.0, 1.0, fin)
        if fout:
            y[:, -fout:] *= np.linspace(1.0, 0.0, fout)
    res = normalize(y, sr, opts.target_lufs, opts.ceiling_dbtp, circular=opts.loop)
    if res.audio.shape[-1] != n:
        raise PipelineError(f"pipeline produced {res.audio.shape[-1]} samples, expected {n}")
    return ProcessedClip(
        audio=res.audio[0] if mono else res.audio, sample_rate=sr, bpm=opts.bpm, bars=bars, meter=opts.meter or "4/4",
        loop=opts.loop, format=opts.format, measured_bpm=measured, stretch_ratio=ratio,
        loudness_lufs=res.loudness_lufs, true_peak_dbtp=res.true_peak_dbtp,
        prompt=str(clip.prompt), controls=_controls_dict(clip.controls), seed=clip.seed,
        index=int(getattr(clip, "index", 0)), model_id=str(clip.model_id),
        steps=getattr(clip, "steps", None), guidance=getattr(clip, "guidance", None), notes=tuple(notes))


# -- files ----------------------------------------------------------------------------------------
