"""The mel front-ends shared by the corpus, the models and the runtime (numpy only).

- `MelSpec()`: 80-bin log-mel of 16 kHz mono audio, hop 320 (50 frames/s), Slaney mel scale,
  natural log with a floor: the shipped generator's output and vocoder's input.
- `FINE`: 192-bin log-mel of 44.1 kHz audio, n_fft 2048, hop 441 (100 frames/s), 30 Hz to
  22.05 kHz, taken on the mid (L+R)/2 and the side (L-R)/2 of a stereo mix: what the v2 decoder
  consumes (mid/side, so that phases reconstructed per channel still fold down to the mid).
- `COARSE`: the mid's FINE mel pooled to 50 frames/s (log of the mean power of frames 2j and
  2j+1) and cut to the bins centred at or below 8 kHz: what the v2 generator makes. Sharing
  FINE's filterbank makes the cascader's crossover a plain bin split. A generator may also make
  `side_bands` rows: per band of FINE bins and coarse frame, the side's power over the mid's
  (`side_bands`), so that the text-conditioned generator decides the stereo image.
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


@dataclass(frozen=True)
class CoarseSpec:
    """FINE's mid-channel mel pooled over `pool` frames in power and cut to its first `n_bins` bins,
    then `side_bands` rows of the side's level against the mid's (0: the generator makes no image)."""

    fine: MelSpec
    pool: int
    n_bins: int
    side_bands: int = 0

    @property
    def channels(self) -> int:
        """The generator's rows: the mid's bins, then the side bands."""
        return self.n_bins + self.side_bands

    @property
    def frame_rate(self) -> float:
        return self.fine.frame_rate / self.pool

    @property
    def log_floor(self) -> float:
        return self.fine.log_floor

    def frames(self, n_samples: int) -> int:
        return -(-self.fine.frames(n_samples) // self.pool)

    def to_dict(self) -> dict:
        d = {"fine": self.fine.to_dict(), "pool": self.pool, "n_bins": self.n_bins}
        return {**d, "side_bands": self.side_bands} if self.side_bands else d

    @classmethod
    def from_dict(cls, d: dict) -> CoarseSpec:
        return cls(MelSpec(**d["fine"]), int(d["pool"]), int(d["n_bins"]), int(d.get("side_bands", 0)))


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


def mel_centres(spec: MelSpec) -> np.ndarray:
    """[n_mels] centre frequency (Hz) of each filter of `mel_filterbank(spec)`."""
    pts = _mel_to_hz(np.linspace(_hz_to_mel(spec.fmin), _hz_to_mel(spec.fmax), spec.n_mels + 2))
    return pts[1:-1]


def bins_up_to(spec: MelSpec, fmax: float) -> int:
    """How many of spec's filters are centred at or below fmax (they are in ascending order)."""
    return int(np.count_nonzero(mel_centres(spec) <= fmax + 1e-6))


FINE = MelSpec(sample_rate=44100, n_fft=2048, hop=441, n_mels=192, fmin=30.0, fmax=22050.0)
COARSE_FMAX = 8000.0
COARSE = CoarseSpec(FINE, pool=2, n_bins=bins_up_to(FINE, COARSE_FMAX))
# what a spectral cascader's side channels hold: the side's log-mel, or the side's minus the mid's
SIDE_MODES = ("absolute", "relative")


def mid_side(stereo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mid, side) = ((L+R)/2, (L-R)/2) of float [2, n] audio."""
    x = np.asarray(stereo, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] != 2:
        raise ValueError(f"mid_side expects stereo [2, n], got {x.shape}")
    return 0.5 * (x[0] + x[1]), 0.5 * (x[0] - x[1])


def fine_mel(stereo: np.ndarray, spec: MelSpec = FINE) -> np.ndarray:
    """float32 [2, n_mels, frames]: the log-mel of the mid and of the side of stereo [2, n] audio."""
    mid, side = mid_side(stereo)
    return np.stack([log_mel(mid, spec), log_mel(side, spec)])


def pool_log_mel(log_mel_: np.ndarray, pool: int) -> np.ndarray:
    """[bins, ceil(frames / pool)] log of the mean power of each `pool` consecutive frames (a last
    partial group averages the frames it has)."""
    x = np.asarray(log_mel_, dtype=np.float64)
    bins, frames = x.shape
    groups = -(-frames // pool)
    power = np.zeros((bins, groups * pool))
    power[:, :frames] = np.exp(x)
    counts = np.full(groups, float(pool))
    counts[-1] = frames - (groups - 1) * pool
    mean = power.reshape(bins, groups, pool).sum(axis=2) / counts
    return np.log(mean).astype(np.float32)


def coarse_mel(mid_log_mel: np.ndarray, spec: CoarseSpec = COARSE) -> np.ndarray:
    """float32 [n_bins, coarse frames]: the coarse representation of a mid-channel FINE log-mel."""
    return pool_log_mel(np.asarray(mid_log_mel)[: spec.n_bins], spec.pool)


# a side this far below the mid (-40 dB in power) is as good as none; the side never exceeds the mid
SIDE_BAND_FLOOR = float(np.float32(np.log(1e-4)))


def band_edges(n_mels: int, bands: int) -> np.ndarray:
    """[bands + 1] bin edges splitting `n_mels` mel bins into `bands` runs of (nearly) equal width."""
    if not 0 < bands <= n_mels:
        raise ValueError(f"side bands must be 1..{n_mels}, got {bands}")
    return np.linspace(0, n_mels, bands + 1).round().astype(int)


def _band_power(log_mel_: np.ndarray, edges: np.ndarray, pool: int, frames: int, floor: float) -> np.ndarray:
    """[bands, frames // pool] mean power above the log floor per band of bins and group of `pool`
    frames (what the decoder plays: it reconstructs the floor as silence)."""
    p = np.maximum(np.exp(np.asarray(log_mel_, np.float64)[:, :frames]) - floor, 0.0)
    per = np.stack([p[lo:hi].sum(axis=0) for lo, hi in zip(edges[:-1], edges[1:], strict=True)])
    return per.reshape(len(per), -1, pool).mean(axis=2)


def _side_ratio(fine: np.ndarray, spec: CoarseSpec, frames: int) -> np.ndarray:
    """Unclipped log side-over-mid power per band and coarse frame; a silent band reads as no side."""
    edges, floor = band_edges(spec.fine.n_mels, spec.side_bands), spec.log_floor
    side = _band_power(fine[1], edges, spec.pool, frames, floor)
    mid = _band_power(fine[0], edges, spec.pool, frames, floor)
    return np.log(side + floor * np.exp(SIDE_BAND_FLOOR)) - np.log(mid + floor)


def side_bands(fine: np.ndarray, spec: CoarseSpec) -> np.ndarray:
    """float32 [side_bands, fine frames // pool]: log of the side's power over the mid's per band of
    FINE bins and coarse frame of a [2, n_mels, frames] mid + side log-mel, in [SIDE_BAND_FLOOR, 0]."""
    frames = fine.shape[-1] // spec.pool * spec.pool
    return np.clip(_side_ratio(fine, spec, frames), SIDE_BAND_FLOOR, 0.0).astype(np.float32)


SIDE_SMOOTH_S = 0.5  # the running mean the crossover takes of a generator's side bands


def smooth_side_bands(ratio: np.ndarray, spec: CoarseSpec, circular: bool = False) -> np.ndarray:
    """`ratio` ([side_bands, coarse frames]) as its running mean over SIDE_SMOOTH_S in the log domain
    (wrapping round for a periodic loop): a mix's image moves at that pace, and the frame-to-frame
    noise a sampler leaves in the rows averages out instead of widening the mix (clipped at 0, a
    noisy log ratio's mean power rises)."""
    r = np.asarray(ratio, np.float64)
    w = int(round(SIDE_SMOOTH_S * spec.fine.sample_rate / spec.fine.hop / spec.pool))
    if w <= 1 or r.shape[1] == 0:
        return r.astype(np.float32)
    n, lo, hi = r.shape[1], w // 2, w - 1 - w // 2
    if circular:  # whole windows over the wrapped rows
        r, a = np.pad(r, ((0, 0), (lo, hi)), mode="wrap"), np.arange(n)
        b = a + w
    else:  # near an end: the mean of the frames there are
        a, b = np.clip(np.arange(n) - lo, 0, n), np.clip(np.arange(n) + hi + 1, 0, n)
    c = np.cumsum(np.pad(r, ((0, 0), (1, 0))), axis=1)
    return ((c[:, b] - c[:, a]) / (b - a)).astype(np.float32)


def apply_side_bands(fine: np.ndarray, ratio: np.ndarray, spec: CoarseSpec) -> np.ndarray:
    """A [2, n_mels, frames] mid + side log-mel whose side is scaled, per band and coarse frame, to
    `ratio` ([side_bands, coarse frames], as `side_bands` measures it) below its mid: the side keeps
    its detail within a band, the generator sets its level; bins at the floor stay silent, the side
    stays at or below the mid per bin. Frames past the ratio's keep theirs."""
    out = np.array(fine, dtype=np.float32, copy=True)
    frames = min(out.shape[-1] // spec.pool, np.shape(ratio)[1]) * spec.pool
    if frames == 0:
        return out
    floor = spec.log_floor
    want = np.clip(np.asarray(ratio, np.float64)[:, : frames // spec.pool], SIDE_BAND_FLOOR, 0.0)
    gain = np.repeat(np.exp(want - _side_ratio(out, spec, frames)), spec.pool, axis=1)
    edges = band_edges(spec.fine.n_mels, spec.side_bands)
    side = np.maximum(np.exp(out[1, :, :frames].astype(np.float64)) - floor, 0.0)
    for b, (lo, hi) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        side[lo:hi] *= gain[b]
    out[1, :, :frames] = np.log(side + floor).astype(np.float32)
    np.minimum(out[1], out[0], out=out[1])
    return out


def coarse_rows(fine: np.ndarray, spec: CoarseSpec) -> np.ndarray:
    """float32 [spec.channels, coarse frames]: what a generator of `spec` makes, measured on a
    [2, n_mels, frames] mid + side log-mel: the COARSE mel, then the side bands (a last half coarse
    frame takes the side bands of the one before it)."""
    coarse = coarse_mel(fine[0], spec)
    if not spec.side_bands:
        return coarse
    sides = side_bands(fine, spec)[:, :coarse.shape[1]]
    if sides.shape[1] == 0:
        sides = np.full((spec.side_bands, 1), SIDE_BAND_FLOOR, np.float32)
    sides = np.pad(sides, ((0, 0), (0, coarse.shape[1] - sides.shape[1])), mode="edge")
    return np.concatenate([coarse, sides]).astype(np.float32)


def coarse_to_fine(coarse: np.ndarray, spec: CoarseSpec = COARSE, frames: int | None = None) -> np.ndarray:
    """float32 [fine n_mels, frames]: a coarse mel spread back over the fine frames (each frame
    repeated `pool` times) with the bins above the coarse band at the log floor. A stand-in for
    the cascader, for previews and for measuring what the coarse representation keeps."""
    c = np.asarray(coarse, dtype=np.float32)
    frames = c.shape[1] * spec.pool if frames is None else frames
    up = np.repeat(c, spec.pool, axis=1)[:, :frames]
    out = np.full((spec.fine.n_mels, up.shape[1]), np.log(spec.log_floor), dtype=np.float32)
    out[: spec.n_bins] = up
    return out
