"""Classifier-free guidance in a limited interval of diffusion time (the generator's
`guidance.interval`), on the tiny exported model's real ONNX generator."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from n2m.bridge.cascade import sample_generator
from n2m.bridge.controls import Controls
from n2m.bridge.engine import Engine
from n2m.bridge.grid import beat_grid
from n2m.bridge.manifest import Manifest, ModelError
from n2m.bridge.request import from_options

FRAMES, STEPS = 64, 6


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    return Engine.load(tiny_model_dir, provider="cpu", threads=1)


def _run(engine: Engine, guidance: float, interval, rows: list[int] | None = None) -> np.ndarray:
    man = engine.manifest
    states, mask = engine._encode(["warm rhodes loop, 90 bpm", ""])
    stage = engine.cascade.stages["generator"]

    def counted(x, t, **cond):
        if rows is not None:
            rows.append(x.shape[0])
        return stage(x, t, **cond)

    return sample_generator(counted, man.generator, states.astype(np.float32), mask.astype(np.float32),
                            Controls(bpm=90.0), beat_grid(FRAMES, man.frame_rate, 90.0, None), [3, 4],
                            (man.generator.channels, FRAMES), STEPS, guidance, "dpmpp_2m", interval=interval)


def test_interval_chooses_the_guided_steps(engine: Engine) -> None:
    """Two takes, 6 DPM-Solver++ steps at guidance 3: the whole interval guides every step (4 rows
    each), an interval no step falls in is the unguided run exactly (2 rows each), and (0.3, 0.9)
    guides only some steps, giving a third result."""
    every: list[int] = []
    full = _run(engine, 3.0, (0.0, 1.0), every)
    assert every == [4] * len(every) and len(every) >= STEPS
    plain = _run(engine, 1.0, (0.0, 1.0))
    none: list[int] = []
    np.testing.assert_array_equal(_run(engine, 3.0, (0.0, 1e-9), none), plain)
    assert none == [2] * len(none)
    some: list[int] = []
    part = _run(engine, 3.0, (0.3, 0.9), some)
    assert 4 in some and 2 in some
    assert np.abs(part - full).max() > 1e-3 and np.abs(part - plain).max() > 1e-3


def test_engine_takes_the_interval_from_the_manifest(tiny_model_dir: Path, tmp_path: Path) -> None:
    """A copy of the tiny model whose generator guides only in (0.3, 0.9): a request's clip differs
    from the original model's for the same seed. An interval with lo >= hi or outside [0, 1] is
    refused when the manifest loads."""
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    raw = json.loads((model / "manifest.json").read_text())
    raw["stages"]["generator"]["guidance"]["interval"] = [0.3, 0.9]
    (model / "manifest.json").write_text(json.dumps(raw))
    assert tuple(Manifest.load(model).generator.guidance.interval) == (0.3, 0.9)
    req = from_options({"prompt": "warm rhodes loop", "seconds": 2.0, "seed": 2})
    a = Engine.load(model, provider="cpu", threads=1).generate(req)[0].audio
    b = Engine.load(tiny_model_dir, provider="cpu", threads=1).generate(req)[0].audio
    assert a.shape == b.shape and np.abs(a - b).max() > 1e-4
    for bad in ([0.9, 0.3], [0.0, 1.5], [-0.1, 0.5]):
        raw["stages"]["generator"]["guidance"]["interval"] = bad
        (model / "manifest.json").write_text(json.dumps(raw))
        with pytest.raises((ModelError, ValueError), match="guidance interval"):
            Manifest.load(model)


def test_an_edit_runs_at_the_manifests_edit_guidance(tiny_model_dir: Path, tmp_path: Path) -> None:
    """A copy of the tiny model with guidance 2 and edit guidance 3: a plain request runs at 2, an
    edit that names no guidance at 3 (its clip records it, and equals the one an edit asking for 3
    makes), a request that names a scale runs at it; an edit guidance outside the range is
    refused when the manifest loads; the shipped manifest keeps its own."""
    from n2m.bridge.cascade import Edit
    from n2m.bridge.features import MelSpec, log_mel

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    raw = json.loads((model / "manifest.json").read_text())
    raw["stages"]["generator"]["guidance"].update(default=2.0, edit_default=3.0)
    (model / "manifest.json").write_text(json.dumps(raw))
    eng = Engine.load(model, provider="cpu", threads=1)
    req = from_options({"prompt": "warm rhodes loop", "seconds": 2.0, "seed": 2})
    assert eng.check(req)[1] == 2.0 and eng.check(req, edit=True)[1] == 3.0
    assert eng.check(from_options({"prompt": "x", "seconds": 2.0, "guidance": 4.0}), edit=True)[1] == 4.0
    assert eng.generate(req)[0].guidance == 2.0
    spec = MelSpec(**eng.manifest.mel)
    source = log_mel((0.3 * np.sin(2 * np.pi * 220 * np.arange(32000) / 16000)).astype(np.float32), spec)
    edit = Edit(source, None, 0.6)
    clip = eng.generate(req, edit=edit)[0]
    asked = eng.generate(from_options({"prompt": "warm rhodes loop", "seconds": 2.0, "seed": 2, "guidance": 3.0}),
                         edit=edit)[0]
    assert clip.guidance == 3.0 and np.array_equal(clip.audio, asked.audio)
    raw["stages"]["generator"]["guidance"]["edit_default"] = 20.0
    (model / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises((ModelError, ValueError), match="guidance range"):
        Manifest.load(model)
    from n2m.bridge.modelpath import DEFAULT_MODEL, resolve_model

    g = Manifest.load(resolve_model(DEFAULT_MODEL)).generator.guidance
    assert g.edit_default is not None and g.min <= g.edit_default <= g.max
