"""Guidance that leaves each row's mean over time to the conditional pass (`guidance.envelope`,
`n2m export --guidance-envelope`): plain guidance extrapolates a clip's spectral envelope too,
darkening a dark style's top end and brightening a bright one's. On a tiny exported side-band
model's real ONNX generator."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from n2m.bridge.cascade import sample_generator
from n2m.bridge.controls import Controls
from n2m.bridge.engine import Engine
from n2m.bridge.grid import beat_grid
from n2m.bridge.manifest import Manifest, ModelError
from n2m.bridge.request import from_options

FRAMES = 64


def _one_step(engine: Engine, guidance: float, envelope: float) -> np.ndarray:
    """The estimate at t = 1 (one sampling step): a z - s v for the guided v, row by row."""
    man = engine.manifest
    spec = replace(man.generator, guidance=replace(man.generator.guidance, envelope=envelope))
    states, mask = engine._encode(["warm rhodes loop, 90 bpm", ""])
    return sample_generator(engine.cascade.stages["generator"], spec, states.astype(np.float32),
                            mask.astype(np.float32), Controls(bpm=90.0), beat_grid(FRAMES, man.frame_rate, 90.0, None),
                            [3, 4], (man.generator.channels, FRAMES), 1, guidance, "dpmpp_2m")


def test_the_envelope_share_sets_how_far_each_rows_mean_is_guided(tiny_side_dir: Path) -> None:
    """At guidance 2 (side rows 3): with envelope 0 every row's mean over time is the conditional
    pass's (guidance 1) and its deviations from that mean are plain guidance's (envelope 1); with
    0.5 the mean lies halfway; plain guidance moves the means (so the check can fail)."""
    engine = Engine.load(tiny_side_dir, provider="cpu", threads=1)
    cond, plain = _one_step(engine, 1.0, 1.0), _one_step(engine, 2.0, 1.0)
    flat, half = _one_step(engine, 2.0, 0.0), _one_step(engine, 2.0, 0.5)
    mean = {k: a.mean(axis=-1, keepdims=True) for k, a in dict(cond=cond, plain=plain, flat=flat, half=half).items()}
    assert np.abs(mean["plain"] - mean["cond"]).max() > 1e-2
    np.testing.assert_allclose(mean["flat"], mean["cond"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(flat - mean["flat"], plain - mean["plain"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(mean["half"], (mean["cond"] + mean["plain"]) / 2, rtol=0, atol=1e-5)


def test_the_engine_reads_the_envelope_from_the_manifest(tiny_side_dir: Path, tmp_path: Path) -> None:
    """A copy of the model with envelope 0: a request's clip differs from the plain model's for the
    same seed; at guidance 1 (no unconditional pass) the two are the same clip."""
    flat = tmp_path / "flat"
    shutil.copytree(tiny_side_dir, flat)
    raw = json.loads((flat / "manifest.json").read_text())
    raw["stages"]["generator"]["guidance"]["envelope"] = 0.0
    (flat / "manifest.json").write_text(json.dumps(raw))
    assert Manifest.load(tiny_side_dir).generator.guidance.envelope == 1.0
    a_eng, b_eng = (Engine.load(m, provider="cpu", threads=1) for m in (tiny_side_dir, flat))
    req = from_options({"prompt": "warm rhodes loop", "seconds": 2.0, "seed": 2})
    a, b = a_eng.generate(req)[0].audio, b_eng.generate(req)[0].audio
    assert a.shape == b.shape and np.abs(a - b).max() > 1e-4
    req1 = from_options({"prompt": "warm rhodes loop", "seconds": 2.0, "seed": 2, "guidance": 1.0})
    np.testing.assert_array_equal(a_eng.generate(req1)[0].audio, b_eng.generate(req1)[0].audio)


def test_a_bad_envelope_is_refused(tiny_side_dir: Path, tmp_path: Path, capsys) -> None:
    """Inputs tried: envelope 1.5 in a manifest; `n2m export --guidance-envelope -0.2`: one clear
    line each; `--guidance-envelope 0` is written to the manifest (a tiny mel model exported)."""
    from n2m.exporter.export import main as export_main
    from n2m.exporter.export import random_checkpoint

    dst = tmp_path / "bad"
    shutil.copytree(tiny_side_dir, dst)
    raw = json.loads((dst / "manifest.json").read_text())
    raw["stages"]["generator"]["guidance"]["envelope"] = 1.5
    (dst / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(ModelError, match="guidance envelope 1.5 is outside 0..1"):
        Manifest.load(dst)
    rc = export_main(["--generator", "g.pt", "--spectral", "s.pt", "--out", str(tmp_path / "x"),
                      "--guidance-envelope", "-0.2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "--guidance-envelope -0.2 outside 0..1" in err[0]
    gen = random_checkpoint("generator", tmp_path / "g.pt", seed=1)
    voc = random_checkpoint("vocoder", tmp_path / "v.pt", seed=2)
    rc = export_main(["--generator", str(gen), "--vocoder", str(voc), "--out", str(tmp_path / "ok"),
                      "--variants", "fp32", "--tiny-text", "--steps", "2", "--vocoder-steps", "2",
                      "--guidance-envelope", "0"])
    assert rc == 0 and Manifest.load(tmp_path / "ok").generator.guidance.envelope == 0.0
