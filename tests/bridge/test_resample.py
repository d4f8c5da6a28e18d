"""bridge.resample: `keep_low_band` (the crossover after the superres stage keeps the given signal
below the pass frequency and the made one above the stop frequency, sums to the identity, does not
wrap the clip's ends around, refuses bad arguments), `fast_length`, and `resample` between rates."""

from __future__ import annotations

import numpy as np
import pytest

from n2m.bridge.resample import fast_length, keep_low_band, resample

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
        f = fast_length(n)
        assert f >= n and smooth(f)
        assert not any(smooth(k) for k in range(n, f))


@pytest.mark.parametrize("sr_in,sr_out", [(44100, 48000), (48000, 44100), (44100, 16000), (16000, 48000)])
def test_resampling_keeps_a_tone_exactly_and_removes_what_is_above_the_new_nyquist(sr_in: int, sr_out: int) -> None:
    """A 1 kHz tone (and, going down, a 10 kHz tone the new rate cannot hold) through `resample`:
    the length scaled exactly, the tone within -80 dB of the ideal one beyond 0.1 s from the ends
    (so nothing above the new Nyquist frequency is left), the ends no louder than the input by more
    than 1 dB (no ringing at the edges); mono and stereo alike."""
    seconds = 3.0
    t_in = np.arange(int(seconds * sr_in)) / sr_in
    low = 0.5 * np.sin(2 * np.pi * 1000 * t_in)
    high = 0.3 * np.sin(2 * np.pi * 10000 * t_in) if sr_out < 20000 else 0.0
    x = np.stack([low + high, low]).astype(np.float32)
    y = resample(x, sr_in, sr_out)
    assert y.shape == (2, int(round(x.shape[1] * sr_out / sr_in))) and y.dtype == np.float32
    ideal = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(y.shape[1]) / sr_out)
    inner = slice(sr_out // 10, -sr_out // 10)
    for ch in range(2):
        err = y[ch] - ideal
        assert 20 * np.log10(np.abs(err[inner]).max() / 0.5) < -80
    assert np.abs(y).max() <= 10 ** (1 / 20) * np.abs(x).max()
    np.testing.assert_array_equal(resample(x[1], sr_in, sr_out), y[1])


@pytest.mark.parametrize("n", [0, 1, 2, 5, 300])
def test_resampling_a_clip_shorter_than_the_edge_padding(n: int) -> None:
    """Clips of 0-300 samples (shorter than the reflected edges): the exact length, finite, and a
    constant stays near the constant."""
    for sr_in, sr_out in ((44100, 48000), (48000, 16000)):
        y = resample(np.full((2, n), 0.25, np.float32), sr_in, sr_out)
        assert y.shape == (2, int(round(n * sr_out / sr_in)))
        assert np.all(np.isfinite(y))
        if y.shape[1] > 4:
            assert np.abs(y[:, 2:-2] - 0.25).max() < 0.05
