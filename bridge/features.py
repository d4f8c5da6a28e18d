"""The mel front-end shared by the corpus, the models and the runtime (numpy only).

80-bin log-mel of 16 kHz mono audio, hop 320 (50 frames/s), Slaney mel scale, natural log with a
floor. The corpus caches exactly this, the generator produces it, the vocoder cascader consumes
it, and the runtime can compute it again to analyse a clip.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class MelSpec:
    sample_rate: int = 16000
    n_fft: int = 1024
    hop: int = 320
    n_mels: int = 80
    fmin: float = 0.0
    fmax: float = 8000.0
    log_floor: float = 1e-5

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop

    def frames(self, n_samples: int) -> int:
        return 1 + n_samples // self.hop

    def to_dict(self) -> dict:
        return asdict(self)


def _hz_to_mel(f):
    f = np.asarray(f, dtype=np.float64)
    f_sp = 200.0 / 3
    mels = f / f_sp
    min_log_hz, logstep = 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-9) / min_log_hz) / logstep, mels)


def _mel_to_hz(m):
    m = np.asarray(m, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz, logstep = 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_filterbank(spec: MelSpec) -> np.ndarray:
    """[n_mels, n_fft // 2 + 1] Slaney-normalised triangular filters (as librosa's default)."""
    fft_freqs = np.linspace(0.0, spec.sample_rate / 2, spec.n_fft // 2 + 1)
    mel_pts = _mel_to_hz(np.linspace(_hz_to_mel(spec.fmin), _hz_to_mel(spec.fmax), spec.n_mels + 2))
    fdiff = np.diff(mel_pts)
    ramps = mel_pts[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_pts[2:] - mel_pts[:-2]))[:, None]
    return weights.astype(np.float32)


def log_mel(audio: np.ndarray, spec: MelSpec = MelSpec()) -> np.ndarray:
    """[n_mels, frames] float32 log-mel of mono float audio at spec.sample_rate (centred frames)."""
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError("log_mel expects mono audio (1-D)")
    pad = spec.n_fft // 2
    x = np.pad(x, (pad, pad), mode="reflect" if len(x) > pad else "constant")
    n_frames = 1 + (len(x) - spec.n_fft) // spec.hop
    idx = np.arange(spec.n_fft)[None, :] + spec.hop * np.arange(n_frames)[:, None]
    window = np.hanning(spec.n_fft + 1)[:-1].astype(np.float32)  # periodic Hann
    frames = x[idx] * window
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    mel = mel_filterbank(spec) @ power.T.astype(np.float32)
    return np.log(np.maximum(mel, spec.log_floor)).astype(np.float32)
