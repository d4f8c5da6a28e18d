"""The side-band rows' own guidance scale (`guidance.side` of a side-band generator, the stereo
image's): set by `n2m export --side-guidance`, applied row by row by the runtime's sampler, on a
tiny exported side-band model's real ONNX generator."""

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
from n2m.bridge.features import COARSE
from n2m.bridge.grid import beat_grid
from n2m.bridge.manifest import Manifest, ModelError
from n2m.bridge.request import from_options

FRAMES = 64


@pytest.fixture(scope="module")
def side_model(tiny_side_dir: Path) -> Path:
    """A tiny random side-band generator and spectral stage exported by the CLI with guidance 2
    and side guidance 3 (the session's `tiny_side_dir`)."""
    return tiny_side_dir


def _one_step(engine: Engine, guidance: float, side: float | None) -> np.ndarray:
    man = engine.manifest
    spec = replace(man.generator, guidance=replace(man.generator.guidance, side=side))
    states, mask = engine._encode(["warm rhodes loop, 90 bpm", ""])
    return sample_generator(engine.cascade.stages["generator"], spec, states.astype(np.float32),
                            mask.astype(np.float32), Controls(bpm=90.0), beat_grid(FRAMES, man.frame_rate, 90.0, None),
                            [3, 4], (man.generator.channels, FRAMES), 1, guidance, "dpmpp_2m")


def test_side_rows_take_their_own_scale(side_model: Path) -> None:
    """One sampling step (the estimate at t = 1, row by row from the network's one pair of passes):
    at guidance 2 with side 3, the mel rows are those of guidance 2 alone and the side rows those
    of guidance 3 alone; side 3 changes the side rows."""
    assert Manifest.load(side_model).generator.guidance.side == 3.0
    engine = Engine.load(side_model, provider="cpu", threads=1)
    k = COARSE.n_bins
    mixed, g2, g3 = _one_step(engine, 2.0, 3.0), _one_step(engine, 2.0, None), _one_step(engine, 3.0, None)
    np.testing.assert_allclose(mixed[:, :k], g2[:, :k], rtol=0, atol=1e-6)
    np.testing.assert_allclose(mixed[:, k:], g3[:, k:], rtol=0, atol=1e-5)
    assert np.abs(g3[:, k:] - g2[:, k:]).max() > 1e-3


def test_the_engine_reads_side_guidance_from_the_manifest(side_model: Path, tmp_path: Path) -> None:
    """A copy of the model without `side`: a request's clip differs from the side-guided model's
    for the same seed; at guidance 1 (no unconditional pass) the two are the same clip."""
    plain = tmp_path / "plain"
    shutil.copytree(side_model, plain)
    raw = json.loads((plain / "manifest.json").read_text())
    raw["stages"]["generator"]["guidance"]["side"] = None
    (plain / "manifest.json").write_text(json.dumps(raw))
    a_eng, b_eng = (Engine.load(m, provider="cpu", threads=1) for m in (side_model, plain))
    req = from_options({"prompt": "warm rhodes loop", "seconds": 2.0, "seed": 2})
    a, b = a_eng.generate(req)[0].audio, b_eng.generate(req)[0].audio
    assert a.shape == b.shape and np.abs(a - b).max() > 1e-4
    req1 = from_options({"prompt": "warm rhodes loop", "seconds": 2.0, "seed": 2, "guidance": 1.0})
    np.testing.assert_array_equal(a_eng.generate(req1)[0].audio, b_eng.generate(req1)[0].audio)


def test_bad_side_guidance_is_refused(side_model: Path, tiny_model_dir: Path, tmp_path: Path, capsys) -> None:
    """Inputs tried: side 20 above the range's max 15 in a manifest; side on a generator without
    side bands (the tiny mel model); `n2m export --side-guidance -1`: one clear line each."""
    from n2m.exporter.export import main as export_main

    for src, name in ((side_model, "range"), (tiny_model_dir, "nobands")):
        dst = tmp_path / name
        shutil.copytree(src, dst)
        raw = json.loads((dst / "manifest.json").read_text())
        raw["stages"]["generator"]["guidance"]["side"] = 20.0 if name == "range" else 3.0
        (dst / "manifest.json").write_text(json.dumps(raw))
        with pytest.raises(ModelError, match="inconsistent" if name == "range" else "needs side-band rows"):
            Manifest.load(dst)
    rc = export_main(["--generator", "g.pt", "--spectral", "s.pt", "--out", str(tmp_path / "x"),
                      "--side-guidance", "-1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "side guidance -1.0 outside 0..15.0" in err[0]
