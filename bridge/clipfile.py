"""Clip files: the audio with its metadata (WAV LIST/INFO, FLAC Vorbis comments) and a JSON
sidecar, written atomically (temporary name, fsync, link), so names are unique, nothing is
overwritten and no partial file is ever visible. Readers for the tags and a measure of a file.

    files = write_clip(processed, out_dir)          # ClipFiles(audio, sidecar, metadata)
"""

from __future__ import annotations

import json
import os
import re
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pedalboard.io import AudioFile

from n2m.bridge.loudness import integrated_loudness, to_db, true_peak
from n2m.bridge.pipeline import FORMATS, PipelineError, ProcessedClip

TMP_PREFIX = ".n2m-tmp-"  # temporary files carry it; nothing lists them, recovery deletes them


@dataclass(frozen=True)
class ClipFiles:
    audio: Path
    sidecar: Path
    metadata: dict[str, Any]


def slug(text: str, limit: int = 40) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return s[:limit].rstrip("-") or "clip"


def safe_name(name: str) -> str:
    """A file-name stem from a request, or PipelineError: no separators, no '..', no hidden names."""
    if not name or len(name) > 100 or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 _.,+-]*", name) or ".." in name:
        raise PipelineError(f"name {name!r} refused: use letters, digits, space, _ . , + - (no paths)")
    return name


def _riff_info(meta: dict[str, Any]) -> bytes:
    def sub(cid: bytes, text: str) -> bytes:
        data = text.encode("utf-8") + b"\0"
        return cid + struct.pack("<I", len(data)) + data + (b"\0" if len(data) & 1 else b"")

    summary = {k: meta.get(k) for k in ("prompt", "seed", "controls", "model_id", "bpm", "bars", "meter",
                                        "loop", "job_id", "index", "steps", "guidance")}
    body = b"INFO"
    body += sub(b"INAM", meta.get("prompt", ""))
    body += sub(b"ICMT", json.dumps(summary, sort_keys=True))
    body += sub(b"ISFT", f"n2m ({meta.get('model_id', '')})")
    body += sub(b"ICRD", time.strftime("%Y-%m-%d", time.gmtime(meta.get("created", time.time()))))
    body += sub(b"IKEY", f"seed={meta.get('seed')} bpm={meta.get('bpm')}")
    return b"LIST" + struct.pack("<I", len(body)) + body


def add_wav_info(path: Path, meta: dict[str, Any]) -> None:
    """Append a LIST/INFO chunk to a RIFF/WAVE file and fix the RIFF size."""
    data = bytearray(path.read_bytes())
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise PipelineError(f"{path} is not a RIFF/WAVE file")
    body_end = 8 + struct.unpack("<I", data[4:8])[0]
    del data[body_end:]
    if len(data) & 1:
        data += b"\0"
    data += _riff_info(meta)
    data[4:8] = struct.pack("<I", len(data) - 8)
    path.write_bytes(bytes(data))


def read_wav_info(path: str | os.PathLike[str]) -> dict[str, str]:
    """The LIST/INFO entries of a WAV file ({"INAM": ..., "ICMT": ...})."""
    d = Path(path).read_bytes()
    out: dict[str, str] = {}
    i = 12
    while i + 8 <= len(d):
        cid, n = d[i : i + 4], struct.unpack("<I", d[i + 4 : i + 8])[0]
        if cid == b"LIST" and d[i + 8 : i + 12] == b"INFO":
            j, end = i + 12, i + 8 + n
            while j + 8 <= end:
                sid, m = d[j : j + 4].decode("ascii", "replace"), struct.unpack("<I", d[j + 4 : j + 8])[0]
                out[sid] = d[j + 8 : j + 8 + m].rstrip(b"\0").decode("utf-8", "replace")
                j += 8 + m + (m & 1)
        i += 8 + n + (n & 1)
    return out


def _vorbis_comment(meta: dict[str, Any]) -> bytes:
    vendor = b"n2m"
    tags = {
        "TITLE": meta.get("prompt", ""), "DESCRIPTION": meta.get("prompt", ""),
        "COMMENT": json.dumps({k: meta.get(k) for k in ("seed", "controls", "model_id", "bpm", "bars")}, sort_keys=True),
        "N2M_PROMPT": meta.get("prompt", ""), "N2M_SEED": str(meta.get("seed")),
        "N2M_MODEL": str(meta.get("model_id", "")), "N2M_CONTROLS": json.dumps(meta.get("controls"), sort_keys=True),
        "BPM": "" if meta.get("bpm") is None else f"{meta['bpm']:g}", "ENCODER": "n2m",
    }
    body = struct.pack("<I", len(vendor)) + vendor + struct.pack("<I", len(tags))
    for k, v in tags.items():
        e = f"{k}={v}".encode()
        body += struct.pack("<I", len(e)) + e
    return body


def add_flac_comments(path: Path, meta: dict[str, Any]) -> None:
    """Replace the FLAC file's VORBIS_COMMENT block with n2m's tags (inserted after STREAMINFO)."""
    d = path.read_bytes()
    if d[:4] != b"fLaC":
        raise PipelineError(f"{path} is not a FLAC file")
    i, blocks = 4, []
    while True:
        hdr = d[i]
        n = int.from_bytes(d[i + 1 : i + 4], "big")
        blocks.append((hdr & 0x7F, d[i + 4 : i + 4 + n]))
        i += 4 + n
        if hdr & 0x80:
            break
    blocks = [b for b in blocks if b[0] != 4]
    blocks.insert(1, (4, _vorbis_comment(meta)))
    out = bytearray(b"fLaC")
    for k, (typ, body) in enumerate(blocks):
        out.append(typ | (0x80 if k == len(blocks) - 1 else 0))
        out += len(body).to_bytes(3, "big") + body
    path.write_bytes(bytes(out) + d[i:])


def read_flac_comments(path: str | os.PathLike[str]) -> dict[str, str]:
    d = Path(path).read_bytes()
    i, out = 4, {}
    while i < len(d):
        hdr, n = d[i], int.from_bytes(d[i + 1 : i + 4], "big")
        if hdr & 0x7F == 4:
            b = d[i + 4 : i + 4 + n]
            vl = struct.unpack("<I", b[:4])[0]
            j = 4 + vl
            count = struct.unpack("<I", b[j : j + 4])[0]
            j += 4
            for _ in range(count):
                m = struct.unpack("<I", b[j : j + 4])[0]
                k, _, v = b[j + 4 : j + 4 + m].decode().partition("=")
                out[k] = v
                j += 4 + m
        i += 4 + n
        if hdr & 0x80:
            break
    return out


def _publish(tmp: Path, stem: str, ext: str, out_dir: Path) -> Path:
    """Link tmp to the first free name stem[-k]ext (os.link never overwrites), then drop tmp."""
    for k in range(1, 1000):
        final = out_dir / (f"{stem}{ext}" if k == 1 else f"{stem}-{k}{ext}")
        try:
            os.link(tmp, final)
        except FileExistsError:
            continue
        tmp.unlink()
        return final
    raise PipelineError(f"no free file name for {stem}{ext} in {out_dir}")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_clip(processed: ProcessedClip, out_dir: str | os.PathLike[str], *, name: str | None = None,
               job_id: str | None = None) -> ClipFiles:
    """Write the audio (with metadata) and its JSON sidecar atomically under out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ext, bit_depth = FORMATS[processed.format]
    created = time.time()
    base = safe_name(name) if name else slug(processed.prompt)
    stem = f"{time.strftime('%Y%m%d-%H%M%S', time.localtime(created))}-{base}-s{processed.seed}"
    if job_id:
        stem += f"-{job_id}"
    if processed.index:
        stem += f"-v{processed.index}"
    meta = processed.metadata() | {"job_id": job_id, "created": created, "bit_depth": bit_depth}
    tmp = out / f"{TMP_PREFIX}{os.getpid()}-{time.monotonic_ns()}{ext}"
    try:
        audio = processed.audio[None, :] if processed.audio.ndim == 1 else processed.audio
        with AudioFile(str(tmp), "w", float(processed.sample_rate), audio.shape[0], bit_depth=bit_depth) as f:
            f.write(np.ascontiguousarray(audio, dtype=np.float32))
        if ext == ".wav":
            add_wav_info(tmp, meta)
        else:
            add_flac_comments(tmp, meta)
        _fsync(tmp)
        audio_path = _publish(tmp, stem, ext, out)
    finally:
        tmp.unlink(missing_ok=True)
    meta["path"] = str(audio_path)
    side_tmp = out / f"{TMP_PREFIX}{os.getpid()}-{time.monotonic_ns()}.json"
    sidecar = audio_path.with_name(audio_path.name + ".json")
    try:
        side_tmp.write_text(json.dumps(meta, indent=1, sort_keys=True, default=str))
        _fsync(side_tmp)
        os.link(side_tmp, sidecar)
    finally:
        side_tmp.unlink(missing_ok=True)
    dfd = os.open(out, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    return ClipFiles(audio_path, sidecar, meta)


def measure_file(path: str | os.PathLike[str], circular: bool = False) -> dict[str, float]:
    """Read a written clip back: samples, rate, loudness and true peak (for tests and `n2m doctor`)."""
    with AudioFile(str(path)) as f:
        x = f.read(f.frames)
        sr = int(f.samplerate)
    x = x[0] if x.shape[0] == 1 else x
    return {"samples": int(x.shape[-1]), "sample_rate": sr, "channels": 1 if x.ndim == 1 else int(x.shape[0]),
            "loudness_lufs": integrated_loudness(x, sr, circular),
            "true_peak_dbtp": to_db(true_peak(x, circular))}
