"""Guidance settings of a side-band generator, set by `n2m export`, applied row by row by the
runtime's sampler, on a tiny exported side-band model's real ONNX generator: the side rows' own
scale (`guidance.side`, the stereo image's) and the share of each row's mean over time that
guidance extrapolates (`guidance.envelope`: plain guidance extrapolates a clip's spectral envelope
too, darkening a dark style's top end and brightening a bright one's)."""

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


def _one_step(engine: Engine, guidance: float, side: float | None = 3.0, envelope: float = 1.0) -> np.ndarray:
    """The estimate at t = 1 (one sampling step): a z - s v for the guided v, row by row."""
    man = engine.manifest
    spec = replace(man.generator, guidance=replace(man.generator.guidance, side=side, envelope=envelope))
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


@pytest.mark.parametrize("field,value", [("side", None), ("envelope", 0.0)])
def test_the_engine_reads_the_guidance_settings_from_the_manifest(side_model: Path, tmp_path: Path,
                                                                   field: str, value) -> None:
    """A copy of the model without `side` (the model's is 3), or with `envelope` 0 (the model's is
    1): a request's clip differs from the model's for the same seed; at guidance 1 (no
    unconditional pass) the two are the same clip."""
    other = tmp_path / "other"
    shutil.copytree(side_model, other)
    raw = json.loads((other / "manifest.json").read_text())
    raw["stages"]["generator"]["guidance"][field] = value
    (other / "manifest.json").write_text(json.dumps(raw))
    assert getattr(Manifest.load(side_model).generator.guidance, field) == {"side": 3.0, "envelope": 1.0}[field]
    a_eng, b_eng = (Engine.load(m, provider="cpu", threads=1) for m in (side_model, other))
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


def test_the_envelope_share_sets_how_far_each_rows_mean_is_guided(side_model: Path) -> None:
    """At guidance 2 (side rows 3): with envelope 0 every row's mean over time is the conditional
    pass's (guidance 1) and its deviations from that mean are plain guidance's (envelope 1); with
    0.5 the mean lies halfway; plain guidance moves the means (so the check can fail)."""
    engine = Engine.load(side_model, provider="cpu", threads=1)
    cond, plain = _one_step(engine, 1.0), _one_step(engine, 2.0)
    flat, half = _one_step(engine, 2.0, envelope=0.0), _one_step(engine, 2.0, envelope=0.5)
    mean = {k: a.mean(axis=-1, keepdims=True) for k, a in dict(cond=cond, plain=plain, flat=flat, half=half).items()}
    assert np.abs(mean["plain"] - mean["cond"]).max() > 1e-2
    np.testing.assert_allclose(mean["flat"], mean["cond"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(flat - mean["flat"], plain - mean["plain"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(mean["half"], (mean["cond"] + mean["plain"]) / 2, rtol=0, atol=1e-5)


def test_a_bad_envelope_is_refused(side_model: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    """Inputs tried: envelope 1.5 in a manifest; `n2m export --guidance-envelope -0.2`: one clear
    line each; `--guidance-envelope 0` reaches the export's guidance (which the manifest holds as is)."""
    from n2m.exporter import export as export_pkg
    from n2m.exporter.export import main as export_main

    dst = tmp_path / "bad"
    shutil.copytree(side_model, dst)
    raw = json.loads((dst / "manifest.json").read_text())
    raw["stages"]["generator"]["guidance"]["envelope"] = 1.5
    (dst / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(ModelError, match="guidance envelope 1.5 is outside 0..1"):
        Manifest.load(dst)
    rc = export_main(["--generator", "g.pt", "--spectral", "s.pt", "--out", str(tmp_path / "x"),
                      "--guidance-envelope", "-0.2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "--guidance-envelope -0.2 outside 0..1" in err[0]
    seen = []
    monkeypatch.setattr(export_pkg, "export_route", lambda found, out, opts, log: seen.append(opts))
    rc = export_main(["--generator", "g.pt", "--spectral", "s.pt", "--out", str(tmp_path / "ok"),
                      "--guidance-envelope", "0"])
    assert rc == 0 and seen[0].guidance.envelope == 0.0
