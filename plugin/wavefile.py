"""Reading clips for the panel's waveform thumbnails: stdlib `wave` + numpy, no audio libraries.

`wave` reads integer PCM (8/16/24/32-bit, also WAVE_FORMAT_EXTENSIBLE on newer Pythons) but
refuses IEEE float, which the daemon writes on request; for those a small RIFF chunk reader
takes over. FLAC is not read (it needs a decoder): callers show a placeholder instead.
"""

from __future__ import annotations

import struct
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_PCM, _FLOAT, _EXTENSIBLE = 1, 3, 0xFFFE


class WavError(ValueError):
    """The file is not a WAV this reader understands; the message says what it found."""


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


def _pcm_to_float(raw: bytes, width: int, channels: int) -> np.ndarray:
    if width == 1:
        x = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        x = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    elif width == 3:
        b = np.frombuffer(raw, dtype=np.uint8)
        b = b[: len(b) - len(b) % 3].reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        v = np.where(v & 0x800000, v - 0x1000000, v)
        x = v.astype(np.float32) / 8388608.0
    elif width == 4:
        x = (np.frombuffer(raw, dtype="<i4").astype(np.float64) / 2147483648.0).astype(np.float32)
    else:
        raise WavError(f"unsupported sample width {width * 8} bits")
    usable = len(x) - len(x) % channels
    return x[:usable].reshape(-1, channels)


def _read_with_wave(path: Path) -> Audio:
    with wave.open(str(path), "rb") as w:
        channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
        raw = w.readframes(w.getnframes())
    return Audio(_pcm_to_float(raw, width, channels), rate)


def _read_riff(path: Path) -> Audio:
    """Minimal RIFF/WAVE reader for what `wave` refuses (IEEE float, some extensible files)."""
    data = path.read_bytes()
    if len(data) < 12 or data[:4] not in (b"RIFF", b"RF64") or data[8:12] != b"WAVE":
        raise WavError(f"{path.name}: not a RIFF/WAVE file")
    pos, fmt, payload = 12, None, None
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        body = data[pos + 8 : pos + 8 + size]
        if cid == b"fmt ":
            fmt = body
        elif cid == b"data":
            payload = body
        pos += 8 + size + (size & 1)
    if fmt is None or payload is None or len(fmt) < 16:
        raise WavError(f"{path.name}: WAV without a fmt or data chunk")
    tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", fmt[:16])
    if tag == _EXTENSIBLE and len(fmt) >= 26:
        tag = struct.unpack("<H", fmt[24:26])[0]  # first two bytes of the sub-format GUID
    if channels < 1:
        raise WavError(f"{path.name}: zero channels")
    if tag == _FLOAT:
        dtype = {32: "<f4", 64: "<f8"}.get(bits)
        if dtype is None:
            raise WavError(f"{path.name}: unsupported float width {bits} bits")
        x = np.frombuffer(payload[: len(payload) - len(payload) % (bits // 8)], dtype=dtype)
        x = x[: len(x) - len(x) % channels].astype(np.float32).reshape(-1, channels)
        return Audio(np.nan_to_num(x), rate)
    if tag == _PCM:
        return Audio(_pcm_to_float(payload, bits // 8, channels), rate)
    raise WavError(f"{path.name}: unsupported WAV format tag {tag:#x}")


def read_wav(path: str | Path) -> Audio:
    """Samples of a WAV file as float32 (frames, channels): integer PCM or IEEE float."""
    p = Path(path)
    if not p.is_file():
        raise WavError(f"{p}: no such file")
    try:
        return _read_with_wave(p)
    except (wave.Error, EOFError, WavError):
        return _read_riff(p)


def compute_peaks(audio: Audio, columns: int) -> Peaks:
    """Min/max envelope over `columns` buckets (columns >= 1)."""
    columns = max(1, int(columns))
    mono_low = audio.samples.min(axis=1) if audio.frames else np.zeros(0, np.float32)
    mono_high = audio.samples.max(axis=1) if audio.frames else np.zeros(0, np.float32)
    low = np.zeros(columns, np.float32)
    high = np.zeros(columns, np.float32)
    if audio.frames:
        edges = np.linspace(0, audio.frames, columns + 1).astype(np.int64)
        for i in range(columns):
            a, b = edges[i], max(edges[i + 1], edges[i] + 1)
            low[i] = mono_low[a:b].min(initial=0.0)
            high[i] = mono_high[a:b].max(initial=0.0)
    return Peaks(np.clip(low, -1, 1), np.clip(high, -1, 1), audio.seconds, audio.samplerate, audio.channels)


def peaks_of_file(path: str | Path, columns: int = 400) -> Peaks:
    return compute_peaks(read_wav(path), columns)
