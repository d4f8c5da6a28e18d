"""The spectral flux the tempo estimate reads, computed a chunk of frames at a time."""

from __future__ import annotations

import numpy as np
import pytest

from n2m.bridge.tempo import flux_frame, spectral_flux


@pytest.mark.parametrize("seconds", [0.05, 1.3, 7.0])
def test_chunked_flux_equals_the_whole_spectrogram_at_once(seconds: float) -> None:
    """Noise with clicks at 44.1 kHz, lengths from under two frames to several chunks: the same
    values as rising log magnitudes taken from the whole spectrogram in one transform."""
    sr = 44100
    rng = np.random.default_rng(5)
    x = (0.1 * rng.standard_normal(int(seconds * sr))).astype(np.float32)
    x[:: sr // 4] += 0.9
    hop, n_fft = flux_frame(sr)
    got = spectral_flux(x, sr)
    if len(x) < n_fft + hop:
        assert got.size == 0
        return
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop]
    logmag = np.log1p(100.0 * np.abs(np.fft.rfft(frames * np.hanning(n_fft).astype(np.float32), axis=1)))
    want = np.maximum(0.0, np.diff(logmag, axis=0)).sum(axis=1)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-6)
