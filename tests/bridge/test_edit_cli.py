"""`n2m vary` and `n2m extend` on the shipped model, from a clip `n2m generate` wrote and from a
stereo 44.1 kHz FLAC with no sidecar; and the refusals, each one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pedalboard.io import AudioFile

from n2m.bridge.edit import JOIN_OUTSIDE_S
from n2m.bridge.features import MelSpec, log_mel

REPO = Path(__file__).resolve().parents[2]


def _n2m(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "n2m.bridge.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("src")
    proc = _n2m("generate", "lo-fi hip hop, 80 bpm, D minor, 2 bars", "--seed", "4", "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    return Path(proc.stdout.split()[0])


def _read(path: Path) -> tuple[np.ndarray, int]:
    with AudioFile(str(path)) as f:
        return f.read(f.frames), int(f.samplerate)


def test_extend_keeps_the_source_and_adds_exact_bars(source: Path, tmp_path: Path) -> None:
    proc = _n2m("extend", str(source), "--bars", "2", "--seed", "1", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    out = Path(proc.stdout.split()[0])
    y, sr = _read(out)
    x, sr0 = _read(source)
    assert sr == sr0 and y.shape[0] == x.shape[0]
    assert y.shape[1] == x.shape[1] + round(2 * 4 * 60 / 80 * sr)  # 2 bars at the sidecar's 80 bpm
    assert np.abs(y[:, : x.shape[1]] - x).max() <= 2e-3  # the source's own samples (24-bit)
    new = y[0, x.shape[1]:]
    assert np.abs(new).max() > 0.01 and np.isfinite(new).all()
    meta = json.loads(out.with_name(out.name + ".json").read_text())
    assert meta["source"] == str(source) and meta["bars"] == 2 and meta["bpm"] == 80.0


def test_inpaint_replaces_only_its_bars(source: Path, tmp_path: Path) -> None:
    """Bar 2 of a 2-bar clip at 80 bpm made anew: bar 1 is the source's own samples up to the join's
    crossfade (at most JOIN_OUTSIDE_S before it), bar 2 is new."""
    proc = _n2m("inpaint", str(source), "--bars", "2-2", "--seed", "3", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    y, sr = _read(Path(proc.stdout.split()[0]))
    x, _ = _read(source)
    bar = round(4 * 60 / 80 * sr)
    kept = bar - int(np.ceil(JOIN_OUTSIDE_S * sr))
    assert y.shape == x.shape and np.abs(y[:, :kept] - x[:, :kept]).max() <= 2e-3
    assert np.abs(y[:, bar + int(0.15 * sr):] - x[:, bar + int(0.15 * sr):]).mean() > 1e-3


def test_vary_moves_with_strength_and_keeps_the_files_shape(source: Path, tmp_path: Path) -> None:
    x, sr = _read(source)
    spec = MelSpec()
    ref = log_mel(x[0].astype(np.float32) if sr == 16000 else np.asarray(x[0], np.float32)[:: sr // 16000], spec)
    dist = []
    for s in ("0.3", "1"):
        proc = _n2m("vary", str(source), "--strength", s, "--seed", "2", "--out", str(tmp_path / s))
        assert proc.returncode == 0, proc.stderr
        y, sr1 = _read(Path(proc.stdout.split()[0]))
        assert (sr1, y.shape) == (sr, x.shape)
        m = log_mel(np.asarray(y[0], np.float32)[:: sr // 16000], spec)
        dist.append(float(np.abs((m - m.mean(1, keepdims=True)) - (ref - ref.mean(1, keepdims=True))).mean()))
    print("vary distance at strength 0.3 and 1:", dist)
    assert dist[0] < dist[1]


def test_a_stereo_flac_without_sidecar_is_varied_in_its_own_format(tmp_path: Path) -> None:
    t = np.arange(int(3.0 * 44100)) / 44100
    beat = (np.sin(2 * np.pi * 110 * t) * (np.mod(t, 0.5) < 0.1)).astype(np.float32)
    src = tmp_path / "loop.flac"
    with AudioFile(str(src), "w", 44100.0, 2) as f:
        f.write(np.stack([0.5 * beat, 0.4 * beat]))
    proc = _n2m("vary", str(src), "dark techno", "--strength", "0.5", "--bpm", "120", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    out = Path(proc.stdout.split()[0])
    y, sr = _read(out)
    assert out.suffix == ".flac" and sr == 44100 and y.shape == (2, len(t))


@pytest.mark.parametrize(("args", "why"), [
    (["vary", "{missing}", "--strength", "0.5"], "no such file"),
    (["vary", "{text}", "--strength", "0.5"], "not audio"),
    (["vary", "{src}", "--strength", "0"], "strength must be in (0, 1]"),
    (["vary", "{src}", "--strength", "1.5"], "strength must be in (0, 1]"),
    (["extend", "{src}", "--bars", "40"], "more than this model's"),
    (["extend", "{src}", "--bars", "0"], "--bars must be from 1 to 64"),
    (["inpaint", "{src}", "--bars", "2-5"], "after the clip's end"),
    (["inpaint", "{src}", "--bars", "two"], "write a range of bars"),
])
def test_bad_edits_are_refused_in_one_line(source: Path, tmp_path: Path, args: list[str], why: str) -> None:
    """A missing file, a text file, a strength of 0 and of 1.5, 40 bars after a 6 s clip (past the
    model's 30 s), 0 bars, a region past the clip's end, a region that is not a range: one line
    each, exit 2, nothing written."""
    (tmp_path / "notes.txt").write_text("not audio")
    subs = {"{missing}": str(tmp_path / "gone.wav"), "{text}": str(tmp_path / "notes.txt"), "{src}": str(source)}
    proc = _n2m(*[subs.get(a, a) for a in args], "--out", str(tmp_path / "out"))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and why in lines[0], proc.stderr
    assert not list((tmp_path / "out").glob("*.wav"))
