"""Tempo of audio: onset strength, an autocorrelation tempo estimate, and the stretch to a target.

Used by the clip pipeline (measure, then stretch by the small ratio left) and by analysis tools.
"""

from __future__ import annotations

import math

import numpy as np

from n2m.bridge.grid import beat_quarters

_FLUX_CHUNK = 256  # frames per FFT batch of the spectral flux


def flux_frame(sr: int, fps: float = 200.0) -> tuple[int, int]:
    """(hop, n_fft) of the spectral flux at about `fps` frames per second: ~32 ms Hann frames."""
    return max(1, int(round(sr / fps))), 1 << int(math.ceil(math.log2(max(sr * 0.032, 64))))


def spectral_flux(x: np.ndarray, sr: int, fps: float = 200.0) -> np.ndarray:
    """Half-wave rectified rise of the log magnitude between consecutive frames of `x` (the frames
    start at sample 0, `flux_frame` apart); empty when `x` holds fewer than two frames."""
    hop, n_fft = flux_frame(sr, fps)
    x = np.asarray(x, dtype=np.float32)
    if len(x) < n_fft + hop:
        return np.zeros(0)
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop]
    window = np.hanning(n_fft).astype(np.float32)
    out = np.empty(len(frames) - 1, np.float32)
    # a chunk of frames at a time (each chunk's first frame is the previous chunk's last): small
    # buffers that stay in cache, not a clip-sized spectrogram in freshly faulted pages
    for s in range(1, len(frames), _FLUX_CHUNK):
        e = min(len(frames), s + _FLUX_CHUNK)
        logmag = np.log1p(100.0 * np.abs(np.fft.rfft(frames[s - 1:e] * window, axis=1)))
        out[s - 1:e - 1] = np.maximum(0.0, np.diff(logmag, axis=0)).sum(axis=1)
    return out


def onset_strength(x: np.ndarray, sr: int, fps: float = 200.0) -> tuple[np.ndarray, float]:
    """Spectral flux of the log magnitude (half-wave rectified), mean removed, at about `fps`
    frames per second."""
    flux = spectral_flux(x, sr, fps)
    return (flux - flux.mean() if flux.size else flux), sr / flux_frame(sr, fps)[0]


def _metre_support(ac: np.ndarray, lag: int) -> float:
    """How strongly the onsets also repeat at the bars a beat of `lag` would build: the better of
    duple (2L and 4L) and triple (3L) bars, each the autocorrelation's largest positive value
    within 3% of that multiple (two lags at least: a generated clip's timing drifts a little). A
    syncopated pattern's 3-eighth pulse (trap's 3-3-2) repeats at 1.5 beats but does not tile a
    4/4 bar, so the quarter-note beat wins over it."""
    n = len(ac)

    def near(m: int) -> float | None:
        w = max(2, int(round(0.03 * m * lag)))
        if m * lag + w >= n:
            return None
        return max(0.0, float(ac[m * lag - w:m * lag + w + 1].max()))

    two, three, four = near(2) or 0.0, near(3) or 0.0, near(4)
    duple = two + (two if four is None else four)  # no room for the bar: 2L twice
    return 0.5 * max(duple, 2.0 * three)


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
    prior = np.exp(-0.5 * (np.log2(bpm_of_lag / 120.0) / 2.0) ** 2)  # a mild preference near 120
    peak = np.zeros(len(ac), dtype=bool)  # candidates: the autocorrelation's own positive peaks
    peak[1:-1] = (ac[1:-1] >= ac[:-2]) & (ac[1:-1] >= ac[2:]) & (ac[1:-1] > 0)
    score = np.full(len(ac), -1.0)
    for lag in np.flatnonzero(peak[lag_lo:lag_hi + 1]) + lag_lo:
        score[lag] = (ac[lag] + _metre_support(ac, int(lag))) * prior[lag]
    k = int(np.argmax(score))
    if score[k] <= 0:
        return None, 0.0
    a, b, c = ac[k - 1], ac[k], ac[k + 1]  # parabolic refinement of the peak lag
    denom = a - 2 * b + c
    shift = 0.5 * (a - c) / denom if denom < 0 else 0.0
    return 60.0 * fps / (k + float(np.clip(shift, -0.5, 0.5))), float(max(0.0, min(1.0, b)))


def stretch_ratio(measured: float | None, target: float, max_stretch: float,
                  meter: str | None = None) -> tuple[float, str]:
    """pedalboard's stretch factor (>1 = faster) for the reading of `measured` nearest `target`: its
    octaves, and in 6/8 also the quarter-note tempo of a dotted-quarter beat (the felt pulse there)."""
    if measured is None:
        return 1.0, "tempo not measurable: not stretched"
    beats = {1.0, beat_quarters(meter)}
    best = min((measured * m * q for m in (0.5, 1.0, 2.0) for q in beats), key=lambda c: abs(math.log(target / c)))
    ratio = target / best
    if abs(ratio - 1.0) > max_stretch:
        return 1.0, f"measured {measured:.1f} bpm is too far from {target:g} bpm to stretch"
    return ratio, f"measured {measured:.1f} bpm, stretched x{ratio:.4f}"
