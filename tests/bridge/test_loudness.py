"""BS.1770-4 loudness, true peak and the true-peak limiter against known reference values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from n2m.bridge.loudness import (
    integrated_loudness,
    limit_true_peak,
    normalize,
    to_db,
    true_peak,
)


def sine(freq: float, seconds: float, sr: int, amp: float = 1.0, phase: float = 0.0) -> np.ndarray:
    return amp * np.sin(2 * np.pi * freq * np.arange(int(seconds * sr)) / sr + phase)


@pytest.mark.parametrize("sr", [44100, 48000, 96000])
def test_full_scale_997hz_sine_reads_minus_3_01_lufs(sr: int) -> None:
    # BS.1770: a 0 dBFS 997 Hz sine in one channel reads -3.01 LKFS
    got = integrated_loudness(sine(997.0, 5.0, sr), sr)
    print(f"997 Hz sine at {sr} Hz: {got:.3f} LUFS")
    assert abs(got - (-3.01)) < 0.05


def test_gating_ignores_silence_and_halving_amplitude_is_minus_6_db() -> None:
    sr = 48000
    loud = sine(997.0, 20.0, sr, 0.5)
    with_silence = np.concatenate([np.zeros(sr * 10), loud, np.zeros(sr * 10)])
    # only the few 400 ms blocks that straddle the edges pass the gates partly filled
    assert abs(integrated_loudness(with_silence, sr) - integrated_loudness(loud, sr)) < 0.1
    assert abs(integrated_loudness(loud, sr) - integrated_loudness(sine(997.0, 4.0, sr), sr) + 6.02) < 0.05
    assert integrated_loudness(np.zeros(sr), sr) == -math.inf


def test_true_peak_sees_the_peak_between_samples() -> None:
    # fs/4 sine at 45 degrees: every sample is at 0.707, the waveform peaks at 1.0 between them
    sr = 48000
    x = sine(sr / 4, 1.0, sr, 1.0, np.pi / 4)
    sample_peak = float(np.max(np.abs(x)))
    tp = true_peak(x)
    print(f"sample peak {to_db(sample_peak):.2f} dBFS, true peak {to_db(tp):.2f} dBTP")
    assert to_db(sample_peak) < -2.9
    assert abs(to_db(tp)) < 0.15


def test_limiter_brings_hot_material_under_the_ceiling_without_hard_clipping() -> None:
    sr = 48000
    rng = np.random.default_rng(1)
    x = rng.standard_normal(sr * 5) * 0.8 + sine(60.0, 5.0, sr, 0.9)  # peaks far over 0 dBFS
    y = limit_true_peak(x, sr, -1.0)
    print(f"input true peak {to_db(true_peak(x)):.2f} dBTP -> {to_db(true_peak(y)):.2f} dBTP")
    assert to_db(true_peak(y)) <= -1.0
    # no hard clipping: no run of equal samples at the peak value
    flat = np.sum(np.abs(np.diff(y)) < 1e-12)
    assert flat < 10


@pytest.mark.parametrize("target", [-14.0, -23.0, -9.0])
def test_normalize_reaches_target_within_half_lu_and_respects_ceiling(target: float) -> None:
    sr = 48000
    rng = np.random.default_rng(2)
    beat = np.zeros(sr * 8)
    for start in range(0, len(beat), sr // 2):  # transients: a kick-like burst each 0.5 s
        n = 2000
        beat[start:start + n] += np.sin(2 * np.pi * 55 * np.arange(n) / sr) * np.exp(-np.arange(n) / 400)
    x = 0.05 * beat + 0.01 * rng.standard_normal(len(beat))
    res = normalize(x, sr, target, -1.0)
    print(f"target {target} LUFS: got {res.loudness_lufs:.2f} LUFS, true peak {res.true_peak_dbtp:.2f} dBTP")
    assert abs(res.loudness_lufs - target) <= 0.5
    assert res.true_peak_dbtp <= -1.0


def test_k_weighting_of_channels_together_is_each_channel_alone() -> None:
    """Stereo K-weighted in one transform equals each channel weighted alone (tried: 3.7 s of noise
    at 44.1 kHz, an FFT length that is not a power of two)."""
    from n2m.bridge.loudness import k_weight

    x = np.random.default_rng(3).standard_normal((2, int(3.7 * 44100)))
    both = k_weight(x, 44100)
    assert both.shape == x.shape
    for ch in range(2):
        np.testing.assert_allclose(both[ch], k_weight(x[ch], 44100), atol=1e-12)
