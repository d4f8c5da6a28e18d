"""Loops that are periodic by construction: a diffusion stage sampled on a circle of frames.

A loop of whole bars is a circle of L grid frames. The U-Nets take frame counts that are multiples
of a stage's `frame_multiple`, so each model call sees a window of N >= L frames (the next
multiple) read circularly from a start that moves every call (a golden-ratio walk from a start
drawn from the row's seed): the window's edges fall somewhere new each step, so no place on the
circle is special, the end flows into the start like any other frame, and the same seed gives the
same loop. The frames a window covers twice get the mean of their two v. Conditioning given per
frame (the beat grid, a vocoder's mel) is read through the same window.

Griffin-Lim decodes the circle as one (griffinlim's `circular`: the STFT reads past the end from
the start and the overlap-add folds round, the exact form of padding each end with the other).
The circle is a whole number of frames while the loop is rarely one (bars * bar_seconds *
frame_rate), so the grid is laid out for L frames spanning the loop exactly and the decoded circle
is resampled by the tiny ratio left (`resample_periodic`, band-limited and periodic, so the seam
stays continuous): at most half a frame over the loop, 0.5 % (about 9 cents) for the 2 s minimum,
0.13 % (2 cents) at 8 s. Cutting a longer decode instead would leave a seam where the cut falls.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from n2m.bridge.controls import BEATS_PER_BAR

GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0  # the walk's step: consecutive windows start far apart
_STREAM = 0x100F  # mixed into each row's seed so the walk draws nothing from the noise's generator


def circle_frames(seconds: float, frame_rate: float) -> int:
    """L: the whole number of grid frames nearest a loop of `seconds`."""
    return max(1, int(round(seconds * frame_rate)))


def whole_bars_seconds(seconds: float, bpm: float | None, meter: str | None, lo: float, hi: float) -> float:
    """`seconds` moved to the nearest whole number of bars (at least one) at the tempo, inside
    [lo, hi] where it can be; unchanged in free time (`bpm` None)."""
    if not bpm:
        return seconds
    bar_seconds = BEATS_PER_BAR[meter or "4/4"] * 60.0 / bpm
    bars = max(1, int(round(seconds / bar_seconds)))
    if bars * bar_seconds > hi + 1e-9 and bars > 1:
        bars -= 1
    if bars * bar_seconds < lo - 1e-9:
        bars += 1
    return bars * bar_seconds


class Circle:
    """A stage's calls on a circle of `frames` frames through windows of `window` frames, one start
    per row; `starts` are fractions of the circle (from the seeds: `Circle.from_seeds`)."""

    def __init__(self, frames: int, multiple: int, starts: np.ndarray) -> None:
        self.frames = int(frames)
        self.window = -(-self.frames // int(multiple)) * int(multiple)
        if self.window > 2 * self.frames:
            raise ValueError(f"a circle of {frames} frames is too short for windows of {self.window}")
        self.starts = np.asarray(starts, np.float64)
        self.calls = 0

    @classmethod
    def from_seeds(cls, frames: int, multiple: int, seeds: list[int]) -> Circle:
        return cls(frames, multiple, np.array([np.random.default_rng([int(s), _STREAM]).random() for s in seeds]))

    def offsets(self) -> np.ndarray:
        """The next call's window start per row, in frames."""
        return np.floor(((self.starts + self.calls * GOLDEN) % 1.0) * self.frames).astype(np.int64)

    def wrap(self, stage: Callable[..., np.ndarray], framewise: tuple[str, ...]) -> Callable[..., np.ndarray]:
        """`stage` as a stage on the circle: x [rows, C, frames * per] -> v like x, with the
        conditioning inputs named in `framewise` given on the circle too ([rows, c, frames * k]).
        Rows beyond the seeds' (guidance's unconditional half) repeat the same windows."""

        def on_circle(x: np.ndarray, t: np.ndarray, **cond: np.ndarray) -> np.ndarray:
            offs = self.offsets()
            self.calls += 1
            offs = np.tile(offs, x.shape[0] // len(offs))
            xs = self.take(x, offs)
            cs = {k: (self.take(v, offs) if k in framewise else v) for k, v in cond.items()}
            return self.fold(stage(xs, t, **cs), offs)

        return on_circle

    def take(self, x: np.ndarray, offs: np.ndarray) -> np.ndarray:
        """[rows, c, frames * per] on the circle -> [rows, c, window * per], row r from offs[r]."""
        per = self._per(x)
        extra = (self.window - self.frames) * per
        out = []
        for r, o in enumerate(offs):
            rolled = np.roll(x[r], -int(o) * per, axis=-1)
            out.append(np.concatenate([rolled, rolled[..., :extra]], axis=-1))
        return np.ascontiguousarray(np.stack(out))

    def fold(self, v: np.ndarray, offs: np.ndarray) -> np.ndarray:
        """[rows, c, window * per] windows -> [rows, c, frames * per] on the circle, the samples a
        window covers twice averaged."""
        per = v.shape[-1] // self.window
        size, extra = self.frames * per, (self.window - self.frames) * per
        count = np.ones(size, np.float32)
        count[:extra] += 1.0
        out = []
        for r, o in enumerate(offs):
            acc = v[r, ..., :size].astype(np.float32, copy=True)
            acc[..., :extra] += v[r, ..., size:]
            out.append(np.roll(acc / count, int(o) * per, axis=-1))
        return np.stack(out).astype(np.float32, copy=False)

    def _per(self, x: np.ndarray) -> int:
        per, rest = divmod(x.shape[-1], self.frames)
        if rest or not per:
            raise ValueError(f"{x.shape[-1]} samples are not a whole number of samples per frame of {self.frames}")
        return per


def resample_periodic(x: np.ndarray, n: int) -> np.ndarray:
    """One period of a periodic signal (last axis) resampled to `n` samples: band-limited (the FFT's
    bins kept up to the shorter length's Nyquist frequency) and periodic, so the end still flows
    into the start."""
    x = np.asarray(x)
    m = x.shape[-1]
    if n == m:
        return x.astype(np.float32, copy=True)
    spec = np.fft.rfft(x.astype(np.float64), axis=-1)
    keep = min(m, n) // 2 + 1
    out = np.zeros(x.shape[:-1] + (n // 2 + 1,), np.complex128)
    out[..., :keep] = spec[..., :keep]
    if min(m, n) % 2 == 0:  # the shorter length's Nyquist bin holds one real component (cosine):
        out[..., keep - 1] = spec[..., keep - 1].real * (0.5 if n > m else 2.0)  # as irfft weighs it
    return (np.fft.irfft(out, n, axis=-1) * (n / m)).astype(np.float32)
