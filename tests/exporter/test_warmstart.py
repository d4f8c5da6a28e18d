"""Warm-starting a run from an exported cascade (`n2m train CONFIG --init MODEL_DIR`) and the
time-based cosine learning-rate schedule."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from n2m.exporter.data import write_synthetic_corpus
from n2m.exporter.export.warmstart import WarmStartError, stage_state_dict
from n2m.exporter.train import Trainer, load_config, main

CONFIGS = Path(__file__).resolve().parents[2] / "exporter" / "configs"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_synthetic_corpus(tmp_path_factory.mktemp("corpus"), n_clips=6, seconds=3.0, seed=2)


@pytest.mark.parametrize("stage", ["generator", "vocoder"])
def test_recovers_the_exported_weights_exactly(stage, tiny_model_dir, tiny_checkpoints):
    ckpt = torch.load(tiny_checkpoints[0 if stage == "generator" else 1], weights_only=False)
    got = stage_state_dict(tiny_model_dir, stage)  # also checks parity against ORT itself
    assert set(got) == set(ckpt["ema"])
    for name, ref in ckpt["ema"].items():
        assert torch.equal(got[name], ref), name


def test_shipped_default_recovers_with_parity():
    default = Path(__file__).resolve().parents[2] / "bridge" / "models" / "default"
    for stage in ("generator", "spectral"):
        sd = stage_state_dict(default, stage)  # raises unless torch matches ORT to 1e-4
        assert sd and all(torch.isfinite(v).all() for v in sd.values())


def test_bad_sources_are_refused_with_the_reason(tiny_model_dir, tmp_path):
    # tried: a folder with no manifest, a model built with another config
    with pytest.raises(WarmStartError, match="manifest.json not found"):
        stage_state_dict(tmp_path, "generator")
    from n2m.exporter.models.unet import build_model, tiny_generator_config

    cfg = tiny_generator_config()
    cfg.channels = (12, 24)
    with pytest.raises(WarmStartError, match="different model config"):
        stage_state_dict(tiny_model_dir, "generator", build_model(cfg))


def test_train_init_from_model_dir(corpus, tiny_model_dir, tiny_checkpoints, tmp_path, capsys):
    cfg_path = tmp_path / "gen.json"
    raw = json.loads((CONFIGS / "tiny_generator.json").read_text())
    raw["model"] = torch.load(tiny_checkpoints[0], weights_only=False)["config"]
    raw["corpus"] = str(corpus)
    raw["steps"] = 3
    cfg_path.write_text(json.dumps(raw))
    out = tmp_path / "run"
    assert main([str(cfg_path), "--out", str(out), "--init", str(tiny_model_dir)]) == 0
    assert "initialised from" in capsys.readouterr().out
    ckpt = torch.load(out / "last.pt", weights_only=False)
    assert ckpt["step"] == 3 and ckpt["init_from"] == str(tiny_model_dir)
    # the weights a run starts from are the exported ones, in both the model and its EMA
    ref = torch.load(tiny_checkpoints[0], weights_only=False)["ema"]
    trainer = Trainer(load_config(cfg_path), tmp_path / "direct")
    assert any(not torch.equal(trainer.model.state_dict()[k], ref[k]) for k in ref)  # random before
    trainer.init_from(tiny_model_dir)
    for k in ref:
        assert torch.equal(trainer.model.state_dict()[k], ref[k]), k
        assert torch.equal(trainer.ema.model.state_dict()[k], ref[k]), k
    assert json.loads((out / "summary.json").read_text())["init_from"] == str(tiny_model_dir)

    # --init with a missing path, and a vocoder model for a generator config: clear errors
    assert main([str(cfg_path), "--out", str(tmp_path / "r2"), "--init", str(tmp_path / "nope")]) == 2
    assert "no such checkpoint or model directory" in capsys.readouterr().err
    assert main([str(cfg_path), "--out", str(tmp_path / "r3"), "--init", str(tiny_checkpoints[1])]) == 2
    assert "holds a 'vocoder' stage" in capsys.readouterr().err


def test_cosine_time_schedule(corpus, tmp_path):
    cfg = load_config(CONFIGS / "tiny_vocoder.json")
    cfg.corpus = str(corpus)
    cfg.lr, cfg.warmup_steps, cfg.max_hours = 1e-3, 1, 1.0
    cfg.lr_schedule, cfg.lr_min_ratio = "cosine_time", 0.1
    t = Trainer(cfg, tmp_path)
    lrs = []
    for frac in (0.0, 0.5, 1.0, 2.0):
        t.elapsed = frac * 3600.0
        lrs.append(t.lr_at(100))
    assert math.isclose(lrs[0], 1e-3) and math.isclose(lrs[1], 0.55e-3)
    assert math.isclose(lrs[2], 1e-4) and math.isclose(lrs[3], 1e-4)
    bad = tmp_path / "bad.json"
    raw = json.loads((CONFIGS / "tiny_vocoder.json").read_text())
    raw["lr_schedule"] = "linear"
    bad.write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="lr_schedule"):
        load_config(bad)
