"""Integer-factor band-limited upsampling (numpy), shared by training and the runtime.

The waveform cascaders are conditioned on a lower-rate signal brought up to their own rate: the
3.2 kHz generator output upsampled 5x to 16 kHz, the 16 kHz audio upsampled 3x to 48 kHz. Training
builds that conditioning with this same function (exporter.data), so the signal a cascader sees at
run time is the one it was trained on.

The filter is a Kaiser-windowed sinc with its cut-off at the low rate's Nyquist frequency, applied
polyphase (one short convolution per output phase), with the input's ends reflected so clips do not
start or stop with a filter transient. Output sample ``k * factor`` lies on input sample ``k``, so
``upsample(x, f)[:, ::f]`` is close to ``x`` and lengths are exactly ``len(x) * factor``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

ZEROS_PER_SIDE = 16  # filter half-length in low-rate samples
BETA = 8.0  # Kaiser window shape (stop-band attenuation ~80 dB)


@lru_cache(maxsize=8)
def _phases(factor: int, half: int = ZEROS_PER_SIDE, beta: float = BETA) -> np.ndarray:
    """[factor, 2 * half] polyphase filter bank (float64): phase p, taps over input samples."""
    n = np.arange(-half * factor, half * factor + 1)
    h = np.sinc(n / factor) * np.kaiser(n.size, beta)
    bank = np.zeros((factor, 2 * half), dtype=np.float64)
    for p in range(factor):
        # output sample k * factor + p = sum_j x[k - j] h(j * factor + p), j = -half .. half - 1
        for i, j in enumerate(range(-half, half)):
            idx = j * factor + p + half * factor
            bank[p, i] = h[idx] if 0 <= idx < n.size else 0.0
    return bank


def upsample(x: np.ndarray, factor: int) -> np.ndarray:
    """Band-limited upsampling by an integer factor along the last axis (float32 out)."""
    factor = int(factor)
    if factor < 1:
        raise ValueError(f"upsampling factor must be a positive whole number, got {factor}")
    x = np.asarray(x, dtype=np.float32)
    if factor == 1:
        return x.copy()
    n = x.shape[-1]
    if n == 0:
        return np.zeros(x.shape[:-1] + (0,), np.float32)
    half = ZEROS_PER_SIDE
    bank = _phases(factor)
    flat = x.reshape(-1, n).astype(np.float64)
    pad = min(half, n - 1)
    padded = np.pad(flat, ((0, 0), (pad, pad)), mode="reflect") if pad > 0 else flat
    padded = np.pad(padded, ((0, 0), (half - pad, half - pad)))
    out = np.empty((flat.shape[0], n, factor), dtype=np.float64)
    # row k of the window, reversed: x[k + half], x[k + half - 1], ..., x[k - half + 1] (j = -half ..)
    win = np.lib.stride_tricks.sliding_window_view(padded, 2 * half, axis=-1)[:, 1:n + 1, ::-1]
    for p in range(factor):
        out[:, :, p] = win @ bank[p]
    return out.reshape(x.shape[:-1] + (n * factor,)).astype(np.float32)


__all__ = ["upsample"]
