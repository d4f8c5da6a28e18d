"""Stereo-image meters: side/mid energy ratio (dB) and the left/right correlation. A mono signal
(one channel, or two identical ones) scores the floor and correlation 1."""

from __future__ import annotations

import numpy as np

FLOOR_DB = -120.0


def _channels(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.nan_to_num(np.asarray(audio, dtype=np.float64))
    if a.ndim == 1 or a.shape[0] == 1:
        a = a.reshape(-1)
        return a, a
    if a.ndim != 2 or a.shape[0] != 2:
        raise ValueError(f"expected [samples], [1, samples] or [2, samples] audio, got {a.shape}")
    return a[0], a[1]


def side_mid_db(audio: np.ndarray) -> float:
    """10 log10(energy of (L-R)/2 over energy of (L+R)/2), floored at -120 dB."""
    left, right = _channels(audio)
    mid, side = float(np.sum((left + right) ** 2)), float(np.sum((left - right) ** 2))
    if mid <= 0:
        return FLOOR_DB if side <= 0 else -FLOOR_DB
    return float(max(FLOOR_DB, 10.0 * np.log10(max(side / mid, 1e-30))))


def lr_correlation(audio: np.ndarray) -> float:
    """Pearson correlation of the left and right channels (1 for mono or silence)."""
    left, right = _channels(audio)
    if left is right or np.array_equal(left, right):
        return 1.0
    if left.std() == 0 or right.std() == 0:
        return 1.0 if left.std() == right.std() else 0.0
    return float(np.corrcoef(left, right)[0, 1])


def stereo_scores(audio: np.ndarray) -> dict[str, float]:
    return {"side_mid_db": side_mid_db(audio), "lr_corr": lr_correlation(audio)}
