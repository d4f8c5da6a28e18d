"""The waveform route's stages (wavegen, cascader) and the superres cascader: their data, their
training on a tiny synthetic corpus (the loss falls) and their torch runners."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from n2m.bridge.controls import Controls
from n2m.bridge.resample import upsample
from n2m.exporter.data import AudioCascaderData, CorpusError, WaveGenData, write_synthetic_corpus
from n2m.exporter.models.pipeline import (
    AudioCascaderRunner,
    GeneratorRunner,
    SampleOptions,
    load_checkpoint,
)
from n2m.exporter.models.unet import (
    UNetConfig,
    Vocoder1d,
    VocoderConfig,
    build_model,
    config_from_dict,
    tiny_generator_config,
    tiny_vocoder_config,
)
from n2m.exporter.textenc import TextCache
from n2m.exporter.train import Trainer, load_config, main

CONFIGS = Path(__file__).resolve().parents[2] / "exporter" / "configs"


@pytest.fixture(scope="module")
def corpus48(tmp_path_factory) -> Path:
    return write_synthetic_corpus(tmp_path_factory.mktemp("corpus48"), n_clips=8, seconds=3.0, seed=3,
                                  audio48k=True)


def _cfg(name: str, corpus: Path):
    cfg = load_config(CONFIGS / name)
    cfg.corpus = str(corpus)
    return cfg


def _fixed_loss(trainer: Trainer, batch: dict, seed: int = 123) -> float:
    torch.manual_seed(seed)
    trainer.model.eval()
    with torch.no_grad():
        return float(trainer.loss(batch))


@pytest.mark.parametrize("name", ["tiny_wavegen.json", "tiny_cascader.json", "tiny_superres.json"])
def test_tiny_route_configs_loss_falls(name: str, corpus48: Path, tmp_path: Path) -> None:
    cfg = _cfg(name, corpus48)
    cfg.lr, cfg.warmup_steps = 3e-3, 1
    trainer = Trainer(cfg, tmp_path)
    batch = trainer.data.batch(np.random.default_rng(99), 8, **({"drop": False} if "wavegen" in name else {}))
    before = _fixed_loss(trainer, batch)
    result = trainer.run(60)
    after = _fixed_loss(trainer, batch)
    assert result["step"] == 60 and np.isfinite(after)
    assert after < 0.95 * before, (before, after)
    ckpt = torch.load(tmp_path / "last.pt", weights_only=False)
    assert ckpt["stage"] == cfg.model["stage"] and ckpt["audio_scale"] == trainer.stage_cfg.audio_scale
    model, _ = load_checkpoint(tmp_path / "last.pt")
    assert model.cfg == trainer.stage_cfg


def test_wavegen_crops_are_3200_hz_audio_on_the_grid(corpus48: Path) -> None:
    data = WaveGenData(corpus48, crop_frames=32, sample_rate=3200, audio_scale=3.0)
    assert data.hop == 64
    ex = data.example(np.random.default_rng(0), drop=False)
    assert ex["audio"].shape == (1, 32 * 64) and ex["grid"].shape == (4, 32)
    assert 0 < float(np.abs(ex["audio"]).max()) <= 3.0 * 1.01
    # the crop is the clip's 16 kHz mix brought down to 3.2 kHz, at the crop's start
    clip = next(c for c in data.clips if c["id"] == ex["clip"])
    full = data.signal(clip)[0][0]
    np.testing.assert_array_equal(ex["audio"][0], full[ex["start"] * 64:(ex["start"] + 32) * 64])
    spec = np.abs(np.fft.rfft(full / 3.0))
    freqs = np.fft.rfftfreq(full.size, 1 / 3200)
    assert freqs.max() == 1600 and spec.max() > 0


def test_superres_pairs_are_the_48k_render_and_16k_derived_from_it(corpus48: Path) -> None:
    import soxr

    data = AudioCascaderData(corpus48, snippet_frames=10, stage="superres", sample_rate=48000, cond_rate=16000)
    cond, target = data.example(np.random.default_rng(1))
    assert cond.shape == target.shape == (10 * 960,)
    # the target is a slice of the stored 48 kHz render itself
    renders = [data.reader.audio48k(c) for c in data.clips]
    hits = [r for r in renders if any(np.array_equal(r[s:s + target.size], target)
                                      for s in range(0, r.size - target.size + 1, 960))]
    assert hits, "the target is not a frame-aligned slice of a 48 kHz render"
    # the conditioning is band-limited to 8 kHz: the 16 kHz signal brought back up
    spec = np.abs(np.fft.rfft(cond)) ** 2
    freqs = np.fft.rfftfreq(cond.size, 1 / 48000)
    assert spec[freqs > 8500].sum() < 1e-3 * spec.sum()
    low = soxr.resample(target, 48000, 16000, quality="HQ")
    np.testing.assert_allclose(cond[::3][200:-200], low[200:-200], atol=0.02)


def test_cascader_pairs_and_upsampled_conditioning(corpus48: Path) -> None:
    data = AudioCascaderData(corpus48, snippet_frames=10, stage="cascader", sample_rate=16000, cond_rate=3200)
    cond, target = data.example(np.random.default_rng(2))
    assert cond.shape == target.shape == (3200,)
    spec = np.abs(np.fft.rfft(cond)) ** 2
    freqs = np.fft.rfftfreq(cond.size, 1 / 16000)
    assert spec[freqs > 1800].sum() < 1e-3 * spec.sum()


def test_superres_refuses_a_corpus_without_48k_renders(tmp_path: Path, capsys) -> None:
    plain = write_synthetic_corpus(tmp_path / "c16", n_clips=8, seconds=2.0, seed=4)
    with pytest.raises(CorpusError, match=r"no 48 kHz audio.*--audio48k"):
        AudioCascaderData(plain, stage="superres", sample_rate=48000, cond_rate=16000)
    cfg = tmp_path / "sr.json"
    raw = json.loads((CONFIGS / "tiny_superres.json").read_text())
    raw["corpus"] = str(plain)
    cfg.write_text(json.dumps(raw))
    assert main([str(cfg), "--out", str(tmp_path / "run"), "--steps", "1"]) == 2
    assert "--audio48k" in capsys.readouterr().err


def test_runners_produce_the_stage_rates(corpus48: Path) -> None:
    torch.manual_seed(0)
    wavegen = build_model(load_config(CONFIGS / "tiny_wavegen.json").stage_config()).eval()
    audio = GeneratorRunner(wavegen, TextCache(max_tokens=16)).generate(
        "techno loop, 128 bpm", Controls(bpm=128.0), 50, seed=1, opts=SampleOptions(steps=2))
    assert audio.shape == (50 * 64,) and audio.dtype == np.float32
    cascader = build_model(load_config(CONFIGS / "tiny_cascader.json").stage_config()).eval()
    up = AudioCascaderRunner(cascader).run(audio, seed=2, steps=2, aug=0.1)
    assert up.shape == (50 * 320,) and np.isfinite(up).all()
    superres = build_model(load_config(CONFIGS / "tiny_superres.json").stage_config()).eval()
    hi = AudioCascaderRunner(superres).run(up, seed=3, steps=2)
    assert hi.shape == (50 * 960,) and np.isfinite(hi).all()
    again = AudioCascaderRunner(superres).run(up, seed=3, steps=2)
    np.testing.assert_array_equal(hi, again)


def test_existing_configs_keep_their_state_dict_names() -> None:
    """Adding the route options changed nothing for the mel route's stages."""
    gen = build_model(tiny_generator_config())
    assert not any(k.startswith("grid_in") for k in gen.state_dict())
    assert gen.conv_in.in_channels == 80 + 4
    voc = build_model(tiny_vocoder_config())
    assert any(k.startswith("mel_in") for k in voc.state_dict()) and not any("aug_mlp" in k for k in voc.state_dict())
    # a checkpoint config saved before the new fields existed still means the same model
    old = {k: v for k, v in dataclasses.asdict(tiny_generator_config()).items()
           if k not in ("strides", "audio_scale", "sample_rate")}
    assert config_from_dict(old) == tiny_generator_config()
    old_v = {k: v for k, v in dataclasses.asdict(tiny_vocoder_config()).items()
             if k not in ("sample_rate", "cond_rate", "aug_max")}
    assert config_from_dict(old_v) == tiny_vocoder_config()


def test_route_config_errors() -> None:
    with pytest.raises(ValueError, match="strides"):
        UNetConfig(stage="wavegen", in_channels=1, out_channels=1, channels=(8, 8), strides=(4, 4), sample_rate=3200)
    with pytest.raises(ValueError, match="1 channel"):
        UNetConfig(stage="wavegen", channels=(8, 8), strides=(4,), attn_levels=(1,), head_dim=8, sample_rate=3200)
    with pytest.raises(ValueError, match="wavegen"):
        UNetConfig(strides=(2, 2, 2))
    with pytest.raises(ValueError, match="cond_rate"):
        VocoderConfig(stage="superres", sample_rate=48000, cond_rate=7000)
    assert isinstance(build_model(VocoderConfig(stage="cascader", cond_rate=3200)), Vocoder1d)


def test_upsample_is_band_limited_and_exact_on_its_grid() -> None:
    t = np.arange(3200) / 3200
    x = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    y = upsample(x, 5)
    assert y.shape == (16000,) and y.dtype == np.float32
    np.testing.assert_allclose(y[::5], x, atol=1e-6)
    ref = np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)
    assert np.abs(y - ref)[200:-200].max() < 1e-3
    np.testing.assert_allclose(upsample(np.stack([x, -x]), 3)[1], -upsample(x, 3), atol=1e-6)


def test_wavegen_previews_are_written_at_its_rate(corpus48: Path, tmp_path: Path) -> None:
    import soundfile as sf

    cfg = _cfg("tiny_wavegen.json", corpus48)
    cfg.sample_prompts, cfg.sample_seconds, cfg.sample_steps = ["techno, 120 bpm"], 1.0, 2
    trainer = Trainer(cfg, tmp_path)
    trainer.sample()
    audio, sr = sf.read(str(tmp_path / "samples" / "step0000000_0.wav"))
    assert sr == trainer.stage_cfg.sample_rate == 3200 and len(audio) >= 3200 and np.isfinite(audio).all()
