"""Reading clips for the panel's waveform thumbnails and lengths, through `pedalboard.io.AudioFile`
(WAV in any bit depth or float, FLAC, and whatever else pedalboard reads). No Qt: the thumbnail
cache calls it from a worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pedalboard.io import AudioFile

_KINDS = {".wav": "RIFF/WAVE", ".flac": "FLAC"}


class AudioReadError(ValueError):
    """The file cannot be read as audio; the message names the file and the reason."""


@dataclass(frozen=True)
class Audio:
    samples: np.ndarray  # float32, shape (frames, channels), in [-1, 1]
    samplerate: int

    @property
    def frames(self) -> int:
        return int(self.samples.shape[0])

    @property
    def channels(self) -> int:
        return int(self.samples.shape[1])

    @property
    def seconds(self) -> float:
        return self.frames / float(self.samplerate) if self.samplerate else 0.0


@dataclass(frozen=True)
class Peaks:
    """Per-column minimum and maximum over all channels, for painting a waveform."""

    low: np.ndarray  # float32, shape (columns,)
    high: np.ndarray
    seconds: float
    samplerate: int
    channels: int


def _open(path: str | Path) -> AudioFile:
    p = Path(path)
    if not p.is_file():
        raise AudioReadError(f"{p}: no such file")
    try:
        return AudioFile(str(p))
    except (ValueError, OSError) as exc:
        kind = _KINDS.get(p.suffix.lower(), "audio")
        raise AudioReadError(f"{p.name}: not a {kind} file that can be read ({exc})") from None


def read_audio(path: str | Path) -> Audio:
    """All samples of a clip as float32 (frames, channels)."""
    with _open(path) as f:
        samples = f.read(f.frames)
        rate = int(f.samplerate)
    return Audio(np.ascontiguousarray(samples.T, dtype=np.float32), rate)


def duration(path: str | Path) -> float:
    """The clip's length in seconds, from its header (reads no samples)."""
    with _open(path) as f:
        return f.frames / float(f.samplerate) if f.samplerate else 0.0


def compute_peaks(audio: Audio, columns: int) -> Peaks:
    """Min/max envelope over `columns` buckets (columns >= 1); every bucket spans 0."""
    columns = max(1, int(columns))
    low = np.zeros(columns, np.float32)
    high = np.zeros(columns, np.float32)
    if audio.frames:
        starts = np.linspace(0, audio.frames, columns + 1).astype(np.int64)[:-1]
        low = np.minimum(np.minimum.reduceat(audio.samples.min(axis=1), starts), 0.0)
        high = np.maximum(np.maximum.reduceat(audio.samples.max(axis=1), starts), 0.0)
    return Peaks(np.clip(low, -1, 1).astype(np.float32), np.clip(high, -1, 1).astype(np.float32),
                 audio.seconds, audio.samplerate, audio.channels)


def peaks_of_file(path: str | Path, columns: int = 400) -> Peaks:
    return compute_peaks(read_audio(path), columns)
