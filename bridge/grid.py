"""The beat grid: a per-frame tempo conditioning shared by training and runtime.

Given a tempo and meter, the generator sees four extra input channels per frame: sin/cos of the
beat phase and sin/cos of the bar phase, so the music it makes lands on the requested grid. When
the tempo is unspecified the four channels are zero (the trained "no tempo" state). Clip time 0
is a downbeat both in the corpus and at generation time.
"""

from __future__ import annotations

import numpy as np

from n2m.bridge.controls import BEATS_PER_BAR

GRID_CHANNELS = 4


def beat_quarters(meter: str | None) -> float:
    """The felt beat's length in quarter notes: a quarter, except in 6/8, where it is the dotted quarter."""
    return 1.5 if meter == "6/8" else 1.0


def beat_grid(frames: int, frame_rate: float, bpm: float | None, meter: str | None = None,
              start_seconds: float = 0.0) -> np.ndarray:
    """[4, frames] float32: sin/cos beat phase, sin/cos bar phase; zeros when bpm is None.

    Beats are quarter notes except in 6/8, where the felt beat is the dotted quarter.
    """
    out = np.zeros((GRID_CHANNELS, frames), dtype=np.float32)
    if bpm is None or bpm <= 0:
        return out
    meter = meter or "4/4"
    t = start_seconds + np.arange(frames, dtype=np.float64) / frame_rate
    quarters = t * bpm / 60.0
    beat_phase = 2 * np.pi * quarters / beat_quarters(meter)
    bar_phase = 2 * np.pi * quarters / BEATS_PER_BAR[meter]
    out[0], out[1] = np.sin(beat_phase), np.cos(beat_phase)
    out[2], out[3] = np.sin(bar_phase), np.cos(bar_phase)
    return out
