"""Band-limited resampling (numpy), shared by training and the runtime.

`resample` takes audio from any rate to any other (the clip pipeline's step to the DAW's rate,
the meters' and the edits' inputs); `upsample` is the integer-factor filter the waveform
cascaders are trained and run with.

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

import math
from functools import lru_cache

import numpy as np

from n2m.bridge.periodic import resample_periodic

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


__all__ = ["fast_length", "keep_low_band", "resample", "upsample"]


def fast_length(n: int) -> int:
    """The smallest 2^a 3^b 5^c >= n (a length numpy's FFT takes quickly)."""
    best = 1 << max(0, (n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def keep_low_band(given: np.ndarray, made: np.ndarray, rate: float, pass_hz: float, stop_hz: float) -> np.ndarray:
    """`made` with the band below `pass_hz` taken from `given` instead: a zero-phase crossover,
    raised cosine in frequency from all `given` at `pass_hz` to all `made` at `stop_hz`, the two
    weights summing to one at every frequency (so ``keep_low_band(x, x, ...)`` is ``x``). Both are
    [..., samples] at `rate`; one FFT over the whole clip, the ends reflected first so nothing wraps
    around. float32 out.

    The super-resolution stage's use: it is asked to add what lies above its input's Nyquist
    frequency, and its input is the truth below it; so the runtime keeps the input's own band up to
    where the resamplers' transition band starts and takes only the stage's high band."""
    given = np.asarray(given, dtype=np.float32)
    made = np.asarray(made, dtype=np.float32)
    if given.shape != made.shape:
        raise ValueError(f"keep_low_band needs two signals of one shape, got {given.shape} and {made.shape}")
    if not 0 < pass_hz < stop_hz <= rate / 2:
        raise ValueError(f"keep_low_band needs 0 < pass_hz < stop_hz <= {rate / 2:g}, got {pass_hz:g}, {stop_hz:g}")
    n = made.shape[-1]
    if n < 2:
        return made.copy()
    pad = min(n - 1, 4096)
    size = fast_length(n + 2 * pad)
    widths = [(0, 0)] * (made.ndim - 1) + [(pad, pad)]
    f = np.fft.rfftfreq(size, 1.0 / rate)
    w = np.clip((f - pass_hz) / (stop_hz - pass_hz), 0.0, 1.0)
    w_made = 0.5 - 0.5 * np.cos(np.pi * w)  # 0 up to pass_hz, 1 from stop_hz
    spec = np.fft.rfft(np.pad(given.astype(np.float64), widths, mode="reflect"), n=size) * (1.0 - w_made)
    spec += np.fft.rfft(np.pad(made.astype(np.float64), widths, mode="reflect"), n=size) * w_made
    return np.fft.irfft(spec, n=size)[..., pad:pad + n].astype(np.float32)


RESAMPLE_PAD = 4096  # input samples reflected past each end before resampling


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Mono [n] or [channels, n] audio at sr_out, the length scaled exactly: band-limited by the
    FFT (every bin up to the lower rate's Nyquist frequency kept), the clip's ends reflected and
    faded to zero on both sides so the transform's wrap-round is smooth and the ends ring no more
    than the middle. float32 out."""
    x = np.asarray(x, dtype=np.float32)
    sr_in, sr_out = int(sr_in), int(sr_out)
    if sr_in == sr_out:
        return x
    xc = x[None] if x.ndim == 1 else x
    ch, m = xc.shape
    want = int(round(m * sr_out / sr_in))
    if m == 0:
        return np.zeros((ch, 0) if x.ndim > 1 else (0,), np.float32)
    q = sr_in // math.gcd(sr_in, sr_out)  # input samples that span a whole number of output ones
    pad = q * -(-RESAMPLE_PAD // q)
    reach = min(pad, m - 1)  # the reflection cannot reach further than the clip
    fade = (0.5 - 0.5 * np.cos(np.pi * np.arange(pad) / pad)).astype(np.float32)
    left, right = np.zeros((ch, pad), np.float32), np.zeros((ch, pad), np.float32)
    if reach:
        left[:, pad - reach:] = xc[:, 1:reach + 1][:, ::-1]
        right[:, :reach] = xc[:, m - 1 - reach:m - 1][:, ::-1]
    # zeros after the faded end up to q times a 5-smooth count: both transforms' lengths factor
    # into small primes (no slow prime-length FFT)
    total = q * fast_length(-(-(m + 2 * pad) // q))
    xp = np.concatenate([left * fade, xc, right * fade[::-1], np.zeros((ch, total - m - 2 * pad), np.float32)], axis=1)
    start = pad * sr_out // sr_in
    y = resample_periodic(xp, total * sr_out // sr_in)[:, start:start + want]
    return y[0] if x.ndim == 1 else y
