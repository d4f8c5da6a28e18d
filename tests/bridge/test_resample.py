"""bridge.resample.keep_low_band: the crossover after the superres stage keeps the given signal below
the pass frequency and the made one above the stop frequency, sums to the identity, does not wrap
the clip's ends around, and refuses bad arguments."""

from __future__ import annotations

import numpy as np
import pytest

from n2m.bridge.resample import _fast_length, keep_low_band

SR = 48000


def _tone(hz: float, n: int, phase: float = 0.0, amp: float = 0.3) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * hz * np.arange(n) / SR + phase)).astype(np.float32)


def _level(x: np.ndarray, hz: float) -> complex:
    """Complex amplitude of `x` at `hz` (a whole number of cycles in the window)."""
    n = len(x)
    return complex(np.sum(x * np.exp(-2j * np.pi * hz * np.arange(n) / SR)) * 2 / n)


def test_low_band_from_the_given_high_band_from_the_made() -> None:
    n = SR  # 1 s: every tone below has whole cycles
    given = _tone(3000, n) + _tone(11000, n, amp=0.01)
    made = _tone(3000, n, phase=1.0, amp=0.5) + _tone(12000, n, amp=0.2)  # a wrong 3 kHz and a new 12 kHz
    out = keep_low_band(given, made, SR, 7000.0, 8000.0)
    assert out.dtype == np.float32 and out.shape == (n,)
    # 3 kHz: the given's amplitude and phase; 12 kHz: the made's; 11 kHz (only given): gone
    assert abs(_level(out, 3000) - _level(given, 3000)) < 1e-3
    assert abs(_level(out, 12000) - _level(made, 12000)) < 1e-3
    assert abs(_level(out, 11000)) < 1e-4
    # in the crossfade (7.5 kHz, the middle): half of each
    g, m = _tone(7500, n), _tone(7500, n, phase=2.0)
    mid = keep_low_band(g, m, SR, 7000.0, 8000.0)
    assert abs(_level(mid, 7500) - 0.5 * (_level(g, 7500) + _level(m, 7500))) < 1e-3


def test_the_weights_sum_to_one_and_nothing_wraps_around() -> None:
    rng = np.random.default_rng(0)
    x = (0.2 * rng.standard_normal((2, 30001))).astype(np.float32)  # two rows, an odd length
    np.testing.assert_allclose(keep_low_band(x, x, SR, 7000.0, 8000.0), x, atol=1e-5)
    # a burst of high band at the very start, nothing given: the end of the clip stays silent
    made = np.zeros(20000, np.float32)
    made[:400] = _tone(15000, 400)
    out = keep_low_band(np.zeros_like(made), made, SR, 7000.0, 8000.0)
    assert np.abs(out[-2000:]).max() < 1e-5 and np.abs(out[:400]).max() > 0.2


def test_bad_arguments_are_refused() -> None:
    x = np.zeros(100, np.float32)
    # tried: two lengths, a pass frequency above the stop, a stop above Nyquist
    with pytest.raises(ValueError, match="two signals of one shape"):
        keep_low_band(x, np.zeros(99, np.float32), SR, 7000.0, 8000.0)
    with pytest.raises(ValueError, match="0 < pass_hz < stop_hz"):
        keep_low_band(x, x, SR, 8000.0, 7000.0)
    with pytest.raises(ValueError, match="<= 24000"):
        keep_low_band(x, x, SR, 7000.0, 30000.0)
    one = np.ones(1, np.float32)
    np.testing.assert_array_equal(keep_low_band(one, one * 2, SR, 7000.0, 8000.0), one * 2)


def test_fast_length_is_the_next_2_3_5_smooth_number() -> None:
    def smooth(m: int) -> bool:
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        return m == 1

    for n in (1, 2, 7, 97, 1000, 1441, 65537, 1_449_000):
        f = _fast_length(n)
        assert f >= n and smooth(f)
        assert not any(smooth(k) for k in range(n, f))
