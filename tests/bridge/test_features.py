"""The numpy mel front-end matches librosa's reference implementation."""

import librosa
import numpy as np
import pytest

from n2m.bridge.features import MelSpec, log_mel, mel_filterbank


def test_filterbank_matches_librosa():
    spec = MelSpec()
    ref = librosa.filters.mel(sr=spec.sample_rate, n_fft=spec.n_fft, n_mels=spec.n_mels,
                              fmin=spec.fmin, fmax=spec.fmax)
    np.testing.assert_allclose(mel_filterbank(spec), ref, rtol=1e-4, atol=1e-7)


def test_log_mel_matches_librosa_and_frame_count():
    spec = MelSpec()
    rng = np.random.default_rng(0)
    t = np.arange(spec.sample_rate * 2) / spec.sample_rate
    audio = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    ours = log_mel(audio, spec)
    ref = librosa.feature.melspectrogram(y=audio, sr=spec.sample_rate, n_fft=spec.n_fft,
                                         hop_length=spec.hop, n_mels=spec.n_mels, fmin=spec.fmin,
                                         fmax=spec.fmax, center=True, pad_mode="reflect", power=2.0)
    ref = np.log(np.maximum(ref, spec.log_floor))
    assert ours.shape == ref.shape == (80, spec.frames(audio.size))
    np.testing.assert_allclose(ours, ref, atol=2e-3)
    # the 440 Hz tone lands in the right band
    band = int(np.argmax(ours[:, 50]))
    centre = librosa.mel_frequencies(n_mels=82, fmin=0, fmax=8000)[1:-1][band]
    assert 300 < centre < 600


def test_fine_and_coarse_specs():
    from n2m.bridge.features import COARSE, FINE, bins_up_to, mel_centres

    assert (FINE.sample_rate, FINE.n_fft, FINE.hop, FINE.n_mels, FINE.fmin, FINE.fmax) == \
        (44100, 2048, 441, 192, 30.0, 22050.0)
    centres = mel_centres(FINE)
    assert np.all(np.diff(centres) > 0)
    k = COARSE.n_bins
    assert k == bins_up_to(FINE, 8000.0) and centres[k - 1] <= 8000.0 < centres[k]
    assert COARSE.frame_rate == 50.0 and FINE.frame_rate == 100.0
    assert type(COARSE).from_dict(COARSE.to_dict()) == COARSE


def test_pool_log_mel_means_power_and_keeps_a_partial_last_group():
    from n2m.bridge.features import pool_log_mel

    x = np.random.default_rng(0).normal(-4, 2, size=(3, 7)).astype(np.float32)
    p = pool_log_mel(x, 2)
    assert p.shape == (3, 4)
    assert np.allclose(p[:, 1], np.log((np.exp(x[:, 2]) + np.exp(x[:, 3])) / 2), atol=1e-5)
    assert np.allclose(p[:, 3], x[:, 6], atol=1e-5)  # input tried: an odd frame count


def test_mid_side_fine_mel_and_coarse_round_trip_shapes():
    from n2m.bridge.features import COARSE, FINE, coarse_mel, coarse_to_fine, fine_mel, log_mel

    n = 44100
    t = np.arange(n) / 44100
    left = 0.5 * np.sin(2 * np.pi * 440 * t)
    fm = fine_mel(np.stack([left, left]).astype(np.float32))
    assert fm.shape == (2, 192, FINE.frames(n)) and fm.dtype == np.float32
    assert np.allclose(fm[0], log_mel(left, FINE), atol=1e-5)
    assert fm[1].max() <= np.log(FINE.log_floor) + 1e-6  # identical channels: no side
    c = coarse_mel(fm[0])
    assert c.shape == (COARSE.n_bins, COARSE.frames(n))
    up = coarse_to_fine(c, frames=fm.shape[2])
    assert up.shape == fm[0].shape and np.all(up[COARSE.n_bins:] == np.float32(np.log(FINE.log_floor)))
    # the 440 Hz tone's strongest bin survives pooling and the crop
    assert np.argmax(c[:, 20]) == np.argmax(fm[0][:, 40])
    with pytest.raises(ValueError, match="stereo"):
        fine_mel(left)  # input tried: mono audio
