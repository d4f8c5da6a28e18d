"""Loops from the shipped default model, made the way a producer makes them (`n2m generate --loop`):
sampled periodic, exactly whole bars, neither stretched nor crossfaded, and seamless when played
round. Figures are printed (run with -s).

Seamless here is what holds by construction: played round, the samples across the seam are no
sharper than the loop's own (the click ratio of bridge.pipeline, <= 1; tests/bridge/test_periodic.py
shows circular Griffin-Lim against a cut one-shot, 0.4-0.6 against 46-107), and the level around the
seam is no dip, and the seam is no more abrupt than the loop's most abrupt inner bar line (a circle has
no first bar, so the pipeline starts the file at its least abrupt bar line). `n2m eval MODEL --loops 20`
reports the same over 20 prompts.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pedalboard.io import AudioFile

from n2m.bridge.controls import BEATS_PER_BAR
from n2m.bridge.pipeline import seam_click_ratio, seam_flux, seam_level_ratio

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "bridge" / "models" / "default"
N2M = [sys.executable, "-m", "n2m.bridge.cli"]
CASES = [  # prompt, bpm, meter, seed
    ("deep house groove with chords and a warm bass", 120.0, "4/4", 1),
    ("a gentle waltz on strings and piano", 96.0, "3/4", 1),
    ("irish folk jig on fiddle and whistle", 116.0, "6/8", 2),
]


def _generate(out: Path, prompt: str, bpm: float, meter: str, seed: int, *flags: str) -> tuple[np.ndarray, int, dict]:
    proc = subprocess.run([*N2M, "generate", prompt, "--bars", "4", "--bpm", str(bpm), "--meter", meter,
                           "--seed", str(seed), "--out", str(out), "--quiet", *flags],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    path = Path(proc.stdout.split()[-1])
    with AudioFile(str(path)) as f:
        audio, sr = f.read(f.frames)[0], int(f.samplerate)
    return audio, sr, json.loads(path.with_name(path.name + ".json").read_text())


@pytest.mark.parametrize("prompt,bpm,meter,seed", CASES)
def test_a_loop_is_whole_bars_periodic_and_seamless(tmp_path: Path, prompt: str, bpm: float, meter: str,
                                                    seed: int) -> None:
    """`n2m generate PROMPT --loop --bars 4 --bpm B --meter M --seed S` in 4/4, 3/4 and 6/8."""
    audio, sr, meta = _generate(tmp_path, prompt, bpm, meter, seed, "--loop")
    want = 4 * BEATS_PER_BAR[meter] * 60.0 / bpm * sr
    level = seam_level_ratio(audio, sr)
    seam, inner = seam_flux(audio, sr, 4)
    print(f"{prompt} ({meter}, {bpm:g} bpm, seed {seed}): {len(audio)} samples for {want:.1f}, "
          f"stretch {meta['stretch_ratio']}, seam {meta['loop_seam']}; seam level {level:.2f} of usual, "
          f"seam flux {seam:.3f} against inner bar lines' highest {inner:.3f}")
    assert abs(len(audio) - want) <= 1.0
    assert meta["loop"] and meta["loop_seam"] == "periodic" and meta["bars"] == 4
    assert meta["stretch_ratio"] == 1.0 and meta["measured_bpm"] is None
    assert "no stretch, no crossfade" in meta["notes"][0]
    assert level >= 0.5
    assert seam_click_ratio(audio) <= 1.0
    assert seam <= inner


def test_loop_crossfade_makes_the_old_loop(tmp_path: Path) -> None:
    """`--loop-crossfade` on the 4/4 case: a one-shot's tail crossfaded over its head, still exactly
    4 bars, the tempo measured (and stretched where it is a small step), and said in the sidecar."""
    prompt, bpm, meter, seed = CASES[0]
    audio, sr, meta = _generate(tmp_path, prompt, bpm, meter, seed, "--loop-crossfade")
    print(f"--loop-crossfade: {len(audio)} samples, stretch {meta['stretch_ratio']}, notes {meta['notes']}")
    assert len(audio) == round(4 * 4 * 60.0 / bpm * sr)
    assert meta["loop"] and meta["loop_seam"] == "crossfade" and meta["measured_bpm"] is not None
    assert "crossfaded" in meta["notes"][-1]
