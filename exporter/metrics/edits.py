"""Meters for edits of a source clip (`n2m eval --edits`): log-mel distance and correlation with
each band's mean removed (so that a loudness or colour shift alone does not count as change),
spectral flux around chosen times (a join against the music's own bar lines), and how closely
kept samples match the source. numpy in, numbers out."""

from __future__ import annotations

import math

import numpy as np

from n2m.bridge.features import MelSpec, log_mel
from n2m.exporter.metrics.spectral import mono, resample

MEL = MelSpec()  # the shipped generator's own 80-bin log-mel at 16 kHz
FLUX_FPS = 200.0
FLUX_WINDOW_S = 0.05  # a time's flux is the curve's peak within this distance of it


def mel16k(audio: np.ndarray, sr: int) -> np.ndarray:
    """[80, frames] log-mel (50 frames/s, centred) of the mono mix resampled to 16 kHz."""
    return log_mel(resample(mono(audio), sr, MEL.sample_rate), MEL)


def _centred(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = min(a.shape[1], b.shape[1])
    a, b = a[:, :n].astype(np.float64), b[:, :n].astype(np.float64)
    return a - a.mean(axis=1, keepdims=True), b - b.mean(axis=1, keepdims=True)


def mel_l1(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two log-mels (cut to the shorter), each band's mean removed."""
    x, y = _centred(a, b)
    return float(np.abs(x - y).mean())


def mel_correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    """Correlation of two log-mels (cut to the shorter) over time and frequency, each band's mean
    removed: 1 for the same pattern, ~0 for unrelated ones; None when either is flat."""
    x, y = _centred(a, b)
    den = math.sqrt(float((x * x).sum()) * float((y * y).sum()))
    return float((x * y).sum() / den) if den > 0 else None


def flux_curve(audio: np.ndarray, sr: int, fps: float = FLUX_FPS) -> tuple[np.ndarray, np.ndarray]:
    """(flux, times s): half-wave rectified spectral flux of the log magnitude of the mono mix, one
    value per frame (centred frames, ~32 ms Hann), not mean-removed, so that clips at one rate and
    loudness compare."""
    x = mono(audio).astype(np.float32)
    hop = max(1, int(round(sr / fps)))
    n_fft = 1 << int(math.ceil(math.log2(max(sr * 0.032, 64))))
    x = np.pad(x, (n_fft // 2, n_fft // 2))
    if len(x) < n_fft + hop:
        return np.zeros(0), np.zeros(0)
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop]
    logmag = np.log1p(100.0 * np.abs(np.fft.rfft(frames * np.hanning(n_fft).astype(np.float32), axis=1)))
    flux = np.maximum(0.0, np.diff(logmag, axis=0)).sum(axis=1)
    return flux, (np.arange(1, len(frames)) * hop) / sr


def flux_at(flux: np.ndarray, times: np.ndarray, t: float, window_s: float = FLUX_WINDOW_S) -> float:
    """The flux curve's peak within `window_s` of time `t` (0 when no frame is that close)."""
    near = np.abs(times - t) <= window_s
    return float(flux[near].max()) if near.any() else 0.0


def max_abs_diff(a: np.ndarray, b: np.ndarray, keep: np.ndarray | None = None) -> float:
    """Largest sample difference of two [channels, samples] arrays over the samples `keep` marks."""
    d = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))
    if keep is not None:
        d = d[:, keep]
    return float(d.max()) if d.size else 0.0


def spill_ms(out: np.ndarray, src: np.ndarray, start: int, stop: int, sr: int, tol: float) -> float:
    """How far (ms) outside samples [start, stop) `out` departs from `src` by more than `tol`;
    0 when the change stays inside."""
    moved = np.flatnonzero(np.abs(np.asarray(out, np.float64) - src).max(axis=0) > tol)
    before, after = moved[moved < start], moved[moved >= stop]
    far = max(start - int(before.min()) if before.size else 0, int(after.max()) - stop + 1 if after.size else 0)
    return 1000.0 * far / sr
