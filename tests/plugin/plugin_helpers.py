"""WAV writers for the panel's tests (24-bit PCM through `wave`, IEEE float by hand)."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import numpy as np


def tone(seconds: float = 0.5, sr: int = 48000, channels: int = 1, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    x = amp * np.sin(2 * np.pi * 220 * t) * np.linspace(1.0, 0.0, len(t))
    return np.repeat(x[:, None], channels, axis=1).astype(np.float32)


def write_pcm24(path: Path, x: np.ndarray, sr: int) -> Path:
    v = np.clip(np.round(x * 8388607.0), -8388608, 8388607).astype("<i4")
    raw = v.reshape(-1).view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    with wave.open(str(path), "wb") as w:
        w.setnchannels(x.shape[1])
        w.setsampwidth(3)
        w.setframerate(sr)
        w.writeframes(raw)
    return path


def write_float32(path: Path, x: np.ndarray, sr: int) -> Path:
    data = x.astype("<f4").tobytes()
    ch = x.shape[1]
    fmt = struct.pack("<HHIIHH", 3, ch, sr, sr * ch * 4, ch * 4, 32)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"fact" + struct.pack("<II", 4, x.shape[0])
    body += b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path
