"""bridge.griffinlim: the network-free decoder gives back the spectrum it was asked for, keeps the
pitch (the key), beats librosa's Griffin-Lim on the same budget, and refuses bad shapes."""

from __future__ import annotations

import librosa
import numpy as np
import pytest

from n2m.bridge.features import MelSpec, log_mel
from n2m.bridge.griffinlim import griffin_lim, mel_to_magnitude

SPEC = MelSpec()


def _chord(seconds: float = 3.0) -> np.ndarray:
    """An A minor triad of decaying plucks (harmonics up to 8) over soft noise."""
    sr = SPEC.sample_rate
    t = np.arange(int(seconds * sr)) / sr
    y = np.zeros_like(t)
    for i, f0 in enumerate((220.0, 261.63, 329.63)):
        env = np.exp(-3.0 * ((t - 0.25 * i) % 1.0))
        for h in range(1, 9):
            y += env * np.sin(2 * np.pi * f0 * h * t) / h
    y += 0.01 * np.random.default_rng(0).standard_normal(t.size)
    return (0.2 * y / np.abs(y).max()).astype(np.float32)


def test_round_trip_matches_the_mel_and_keeps_the_pitch():
    y = _chord()
    m = log_mel(y)
    out = griffin_lim(m, length=y.size)
    assert out.dtype == np.float32 and out.shape == y.shape and np.isfinite(out).all()
    err = np.abs(log_mel(out) - m).mean()
    lib = librosa.feature.inverse.mel_to_audio(np.exp(m.astype(np.float64)), sr=SPEC.sample_rate,
                                              n_fft=SPEC.n_fft, hop_length=SPEC.hop, fmin=SPEC.fmin,
                                              fmax=SPEC.fmax, power=2.0, n_iter=32)
    err_lib = np.abs(log_mel(lib.astype(np.float32))[:, : m.shape[1]] - m).mean()
    assert err < 0.5 and err < err_lib  # same 32 iterations, momentum helps
    # loudness within 1 dB, and the chroma still says A / C / E
    assert abs(20 * np.log10(np.sqrt(np.mean(out**2)) / np.sqrt(np.mean(y**2)))) < 1.0
    chroma = librosa.feature.chroma_stft(y=out, sr=SPEC.sample_rate).mean(axis=1)
    assert set(np.argsort(chroma)[-3:]) == {9, 0, 4}


def test_magnitude_is_non_negative_and_fits_the_mel():
    y = _chord(1.0)
    m = log_mel(y)
    mag = mel_to_magnitude(m)
    assert mag.shape == (SPEC.n_fft // 2 + 1, m.shape[1]) and (mag >= 0).all()
    from n2m.bridge.features import mel_filterbank

    fitted = np.log(np.maximum(mel_filterbank(SPEC) @ mag**2, SPEC.log_floor))
    err = np.abs(fitted - m)
    assert np.median(err) < 0.01 and err.mean() < 0.4  # exact on most bins; the floor is loose


def test_deterministic_for_a_seed_and_bad_shapes_refused():
    m = log_mel(_chord(1.0))
    np.testing.assert_array_equal(griffin_lim(m, seed=4, n_iter=4), griffin_lim(m, seed=4, n_iter=4))
    assert not np.allclose(griffin_lim(m, seed=4, n_iter=4), griffin_lim(m, seed=5, n_iter=4))
    # threads sharing a pass's frames change nothing, plain or circular (2 s = 2 chunks of frames)
    m2 = log_mel(_chord(2.0))
    one = griffin_lim(m2, seed=4, n_iter=3)
    np.testing.assert_array_equal(one, griffin_lim(m2, seed=4, n_iter=3, workers=2))
    np.testing.assert_array_equal(one, griffin_lim(m2, seed=4, n_iter=3, workers=8))
    n = m2.shape[1] * SPEC.hop
    np.testing.assert_array_equal(griffin_lim(m2, seed=4, n_iter=3, circular=True, length=n),
                                  griffin_lim(m2, seed=4, n_iter=3, circular=True, length=n, workers=2))
    # tried: a 1-D array, and 64 bands instead of 80
    with pytest.raises(ValueError, match=r"expects \[80, frames\]"):
        griffin_lim(np.zeros(100, np.float32))
    with pytest.raises(ValueError, match=r"expects \[80, frames\]"):
        griffin_lim(np.zeros((64, 10), np.float32))


def test_bins_under_the_lowest_filter_hold_its_leakage():
    """A 46.25 Hz (F#1) bass tone with harmonics, 44.1 kHz, through the v2 cascade's FINE mel
    (fmin 30 Hz, so no filter sees bins 0 and 1 at 21.5 Hz apart): the magnitude there is the
    Hann window's leakage of the lowest covered bin (half of it one bin down, a tenth two bins
    down) instead of silence, and every other bin is the least-squares fit as before."""
    from n2m.bridge.features import FINE

    sr = 44100
    t = np.arange(2 * sr) / sr
    x = sum((0.5 / k) * np.sin(2 * np.pi * k * 46.25 * t) for k in range(1, 6)).astype(np.float32)
    mag = mel_to_magnitude(log_mel(x, FINE), FINE)
    assert np.allclose(mag[1], 0.5 * mag[2]) and np.allclose(mag[0], 0.1 * mag[2])
    assert mag[2].mean() > 1.0  # the tone's own bin is well filled
    true = np.abs(librosa.stft(x, n_fft=FINE.n_fft, hop_length=FINE.hop, window="hann"))
    assert true[1].mean() > 0.3 * true[2].mean()  # a real tone does leak there


@pytest.mark.parametrize("fine", [True, False])
def test_banded_solver_matches_the_dense_projected_gradient(fine: bool):
    """The mel-to-magnitude solver works on the filterbank's bands (blocks of bins with the mel
    rows that touch them); tried on random log-mels of 400 frames, the FINE mel (banded) and the
    16 kHz mel (dense): the same magnitudes as the plain dense iteration to 1e-5 of the largest."""
    from n2m.bridge.features import FINE, mel_filterbank

    spec = FINE if fine else MelSpec()
    lm = (np.random.default_rng(2).standard_normal((spec.n_mels, 400)) - 3).astype(np.float32)
    fb = mel_filterbank(spec).astype(np.float64)
    step = 1.0 / np.linalg.norm(fb, 2) ** 2
    m = np.exp(lm.astype(np.float64))
    p = np.maximum(np.linalg.pinv(fb) @ m, 0.0)
    for _ in range(10):
        p = np.maximum(p - step * fb.T @ (fb @ p - m), 0.0)
    want = np.sqrt(p)
    got = mel_to_magnitude(lm, spec, iters=10)
    low = int(np.flatnonzero(fb.sum(axis=0) > 0)[0])  # the bins below hold the leakage share
    assert np.abs(got[low:] - want[low:]).max() < 1e-5 * want.max()
