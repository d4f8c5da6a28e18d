"""Log-mel to audio without a network: fast Griffin-Lim in numpy (runtime side, no librosa).

The engine's alternative decoder (`decoder="griffin-lim"`): the generator's 80-bin log-mel is
mapped back to a linear magnitude spectrogram by non-negative least squares against the mel
filterbank (projected gradient from the pseudo-inverse), and a phase is found by the fast
Griffin-Lim algorithm (Perraudin et al. 2013, momentum 0.99) with the same centred, periodic-Hann
STFT that `features.log_mel` uses, so that ``log_mel(griffin_lim(m))`` comes back close to ``m``.
Deterministic for a seed (the initial phase).
"""

from __future__ import annotations

import numpy as np

from n2m.bridge.features import MelSpec, mel_filterbank

_BASES: dict[MelSpec, tuple[np.ndarray, np.ndarray, float]] = {}


def _bases(spec: MelSpec) -> tuple[np.ndarray, np.ndarray, float]:
    """(filterbank, its pseudo-inverse, 1 / its squared spectral norm), computed once per spec."""
    if spec not in _BASES:
        fb = mel_filterbank(spec).astype(np.float64)
        step = 1.0 / float(np.linalg.norm(fb, 2) ** 2)
        _BASES[spec] = (fb.astype(np.float32), np.linalg.pinv(fb).astype(np.float32), step)
    return _BASES[spec]


def mel_to_magnitude(log_mel: np.ndarray, spec: MelSpec = MelSpec(), iters: int = 30) -> np.ndarray:
    """[n_fft//2+1, frames] linear magnitude whose mel power best matches exp(log_mel) (NNLS)."""
    fb, pinv, step = _bases(spec)
    power_mel = np.exp(np.asarray(log_mel, dtype=np.float32))
    p = np.maximum(pinv @ power_mel, 0.0)
    fbt = np.ascontiguousarray(fb.T)
    for _ in range(iters):  # projected gradient on ||fb p - m||^2 subject to p >= 0
        p = np.maximum(p - step * (fbt @ (fb @ p - power_mel)), 0.0)
    return np.sqrt(p)


def _stft(x: np.ndarray, spec: MelSpec, window: np.ndarray) -> np.ndarray:
    pad = spec.n_fft // 2
    xp = np.pad(x, (pad, pad), mode="reflect" if len(x) > pad else "constant")
    n_frames = 1 + (len(xp) - spec.n_fft) // spec.hop
    idx = np.arange(spec.n_fft)[None, :] + spec.hop * np.arange(n_frames)[:, None]
    return np.fft.rfft(xp[idx] * window, axis=1).T  # [bins, frames]


def _overlap_add(frames: np.ndarray, hop: int) -> np.ndarray:
    """Sum of [n, width] frames placed every `hop` samples (vectorised: frames cut into hop-long
    chunks, chunk k of frame i lands on output chunk i + k)."""
    n, width = frames.shape
    k = -(-width // hop)
    padded = np.zeros((n, k * hop), dtype=frames.dtype)
    padded[:, :width] = frames
    chunks = padded.reshape(n, k, hop)
    out = np.zeros((n + k - 1, hop), dtype=frames.dtype)
    for j in range(k):
        out[j:j + n] += chunks[:, j]
    return out.reshape(-1)[: width + hop * (n - 1)]


def _istft(stft: np.ndarray, spec: MelSpec, window: np.ndarray, length: int) -> np.ndarray:
    frames = np.fft.irfft(stft.T, n=spec.n_fft, axis=1).astype(np.float32) * window
    out = _overlap_add(frames, spec.hop)
    norm = _overlap_add(np.broadcast_to(window**2, frames.shape), spec.hop)
    out /= np.where(norm > 1e-8, norm, 1.0)
    pad = spec.n_fft // 2
    out = out[pad:pad + length]
    return np.pad(out, (0, max(0, length - len(out))))


def griffin_lim(log_mel: np.ndarray, spec: MelSpec = MelSpec(), n_iter: int = 32, momentum: float = 0.99,
                seed: int = 0, length: int | None = None) -> np.ndarray:
    """float32 mono audio at spec.sample_rate for a [n_mels, frames] log-mel."""
    log_mel = np.asarray(log_mel)
    if log_mel.ndim != 2 or log_mel.shape[0] != spec.n_mels:
        raise ValueError(f"griffin_lim expects [{spec.n_mels}, frames], got {log_mel.shape}")
    frames = log_mel.shape[1]
    length = length if length is not None else frames * spec.hop
    mag = mel_to_magnitude(log_mel, spec)
    window = np.hanning(spec.n_fft + 1)[:-1].astype(np.float32)
    rng = np.random.default_rng(seed)
    angles = np.exp(2j * np.pi * rng.random(mag.shape)).astype(np.complex64)
    prev = np.zeros_like(angles)
    audio = np.zeros(length, np.float32)
    for _ in range(max(1, n_iter)):
        audio = _istft(mag * angles, spec, window, length)
        rebuilt = _stft(audio, spec, window)[:, :frames].astype(np.complex64)
        if rebuilt.shape[1] < frames:
            rebuilt = np.pad(rebuilt, ((0, 0), (0, frames - rebuilt.shape[1])))
        accel = rebuilt - (momentum / (1.0 + momentum)) * prev
        angles = accel / np.maximum(np.abs(accel), 1e-16)
        prev = rebuilt
    audio = _istft(mag * angles, spec, window, length)
    return audio.astype(np.float32)
