"""The numpy mel front-end matches librosa's reference implementation."""

import librosa
import numpy as np

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
