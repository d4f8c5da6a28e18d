"""The v2 generator path: training on the COARSE mel of a corpus with FINE/COARSE caches."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from n2m.bridge.features import COARSE, FINE, coarse_mel, fine_mel
from n2m.exporter.corpus.reader import CorpusError, CorpusReader
from n2m.exporter.data import GeneratorData, write_synthetic_corpus
from n2m.exporter.models.unet import build_model, count_params
from n2m.exporter.train import ConfigError, Trainer, load_config

CONFIGS = Path(__file__).resolve().parents[2] / "exporter" / "configs"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_synthetic_corpus(tmp_path_factory.mktemp("fine"), n_clips=6, seconds=3.0, seed=2, fine=True)


def _tiny_coarse(corpus: Path):
    cfg = load_config(CONFIGS / "tiny_generator.json")
    cfg.corpus = str(corpus)
    cfg.model.update(representation="coarse", in_channels=COARSE.n_bins, out_channels=COARSE.n_bins,
                     mel_mean=-1.5, mel_scale=3.4)
    return cfg


def test_synthetic_fine_corpus_caches_match_the_front_end(corpus):
    r = CorpusReader(corpus)
    c = r.clips()[0]
    fine, coarse = r.fine(c), r.coarse(c)
    assert fine.shape == (2, FINE.n_mels, FINE.frames(3 * 44100)) and coarse.shape == (COARSE.n_bins, 151)
    assert np.abs(coarse - coarse_mel(fine[0])).max() < 0.02
    assert fine_mel(np.zeros((2, 441))).shape == (2, 192, 2)


def test_generator_data_reads_coarse_crops(corpus):
    d = GeneratorData(corpus, "train", crop_frames=64, mel_mean=-1.5, mel_scale=3.4, representation="coarse")
    assert d.frame_rate == COARSE.frame_rate
    ex = d.example(np.random.default_rng(0), drop=False)
    assert ex["mel"].shape == (COARSE.n_bins, 64) and ex["grid"].shape == (4, 64)
    clip = d.clips[d.clips.index(next(c for c in d.clips if c["id"] == ex["clip"]))]
    want = (d.reader.coarse(clip)[:, ex["start"]:ex["start"] + 64] + 1.5) / 3.4
    assert np.allclose(ex["mel"], want)
    b = d.batch(np.random.default_rng(1), 3)
    assert tuple(b["mel"].shape) == (3, COARSE.n_bins, 64)


def test_coarse_data_refuses_a_corpus_without_the_caches(tmp_path):
    plain = write_synthetic_corpus(tmp_path / "plain", n_clips=4, seconds=2.0)  # input tried: a v1 corpus
    with pytest.raises(CorpusError, match="no FINE/COARSE.*n2m corpus build"):
        GeneratorData(plain, "train", representation="coarse")
    with pytest.raises(ValueError, match="representation"):
        GeneratorData(plain, "train", representation="fine")


def test_coarse_config_needs_the_coarse_bin_count(tmp_path):
    raw = json.loads((CONFIGS / "tiny_generator.json").read_text())
    raw["model"].update(representation="coarse")  # input tried: 80 channels for a coarse generator
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(ConfigError, match=f"in_channels = out_channels = {COARSE.n_bins}"):
        load_config(path)


def test_coarse_generator_trains_checkpoints_and_previews(corpus, tmp_path):
    cfg = _tiny_coarse(corpus)
    cfg.lr, cfg.warmup_steps = 3e-3, 1
    cfg.sample_prompts, cfg.sample_seconds, cfg.sample_steps = ["techno, 120 bpm"], 1.0, 2
    trainer = Trainer(cfg, tmp_path)
    batch = trainer.data.batch(np.random.default_rng(9), 6, drop=False)

    def fixed() -> float:
        torch.manual_seed(5)
        trainer.model.eval()
        with torch.no_grad():
            return float(trainer.loss(batch))

    before = fixed()
    trainer.run(40)
    assert fixed() < 0.95 * before
    ckpt = torch.load(tmp_path / "last.pt", map_location="cpu", weights_only=False)
    assert ckpt["config"]["representation"] == "coarse" and ckpt["coarse_mel"] == COARSE.to_dict()
    trainer.sample()
    stem = tmp_path / "samples" / "step0000040_0"
    audio, rate = sf.read(str(stem) + ".wav")
    assert rate == 44100 and audio.shape == (50 * 2 * FINE.hop,) and np.isfinite(audio).all()  # 1 s
    assert np.load(str(stem) + ".npy").shape == (COARSE.n_bins, 50)
    assert (Path(str(stem) + ".png")).stat().st_size > 0


def test_v2_generator_config_is_wider_than_its_bins():
    cfg = load_config(CONFIGS / "v2_generator.json")
    sc = cfg.stage_config()
    assert sc.representation == "coarse" and sc.in_channels == COARSE.n_bins
    assert sc.channels[0] > COARSE.n_bins  # the full-rate level passes a frame's detail through
    assert cfg.crop_frames % sc.frame_multiple == 0 and cfg.max_hours == 6.0 and cfg.threads == 1
    assert 5e6 < count_params(build_model(sc)) < 15e6


def test_export_pairs_a_coarse_generator_only_with_a_spectral_cascader(corpus, tmp_path):
    """Trained (one step) tiny checkpoints: a coarse generator with the mel route's vocoder is
    refused naming both representations; with a spectral cascader it exports as the fine route,
    whose engine makes 44.1 kHz stereo."""
    from n2m.bridge.engine import Engine
    from n2m.bridge.request import from_options
    from n2m.exporter.export import ExportOptions, export_route

    gen = Trainer(_tiny_coarse(corpus), tmp_path / "gen")
    gen.run(1)
    vcfg = load_config(CONFIGS / "tiny_vocoder.json")
    vcfg.corpus = str(corpus)
    voc = Trainer(vcfg, tmp_path / "voc")
    voc.run(1)
    # input tried: a coarse generator with the mel route's vocoder
    with pytest.raises(ValueError, match="makes the COARSE mel; the mel route's vocoder takes the 80-bin mel"):
        export_route({"generator": tmp_path / "gen" / "last.pt", "vocoder": tmp_path / "voc" / "last.pt"},
                     tmp_path / "out")
    scfg = load_config(CONFIGS / "tiny_generator.json")
    scfg.corpus, scfg.crop_frames = str(corpus), 64
    scfg.model.update(stage="spectral", representation="fine", in_channels=2 * FINE.n_mels + COARSE.n_bins,
                      out_channels=2 * FINE.n_mels, cond_aug_max=0.3, mel_mean=-1.5, mel_scale=3.4)
    Trainer(scfg, tmp_path / "spec").run(1)
    man = export_route({"generator": tmp_path / "gen" / "last.pt", "spectral": tmp_path / "spec" / "last.pt"},
                       tmp_path / "fine", ExportOptions(variants=("fp32",), tiny_text=True, vocoder_steps=2, steps=2))
    assert (man.route, man.sample_rate, man.channels, man.mel_max is not None) == ("fine", 44100, 2, True)
    clip = Engine.load(tmp_path / "fine", provider="cpu").generate(from_options({"prompt": "x", "seconds": 2}))[0]
    assert clip.audio.shape == (2, 88200) and np.isfinite(clip.audio).all()


def test_the_spectral_cascader_trains_on_fine_mid_side_from_coarse(corpus, tmp_path):
    """COARSE mid -> FINE mid + side at 100 frames/s: crops stack target and conditioning, the
    config is checked, two steps run and the loss is finite; the v2 config builds."""
    from n2m.exporter.data import SpectralData

    data = SpectralData(corpus, "train", crop_frames=64)
    ex = data.example(np.random.default_rng(0))
    assert ex["mel"].shape == (2 * FINE.n_mels + COARSE.n_bins, 64) and ex["grid"].shape[1] == 64
    clip = data.clips[0]
    fine = CorpusReader(corpus).fine(clip)
    np.testing.assert_allclose(data.signal(clip)[0][:FINE.n_mels] * 3.4 - 1.5, fine[0], atol=1e-4)
    cfg = load_config(CONFIGS / "tiny_generator.json")
    cfg.corpus, cfg.crop_frames = str(corpus), 64
    cfg.model.update(stage="spectral", representation="fine", in_channels=2 * FINE.n_mels + COARSE.n_bins,
                     out_channels=2 * FINE.n_mels, cond_aug_max=0.3, mel_mean=-1.5, mel_scale=3.4)
    trainer = Trainer(cfg, tmp_path / "run")
    losses = [trainer.train_step() for _ in range(2)]
    assert all(np.isfinite(losses))
    with pytest.raises(ValueError, match="FINE mid \\+ side"):
        build_model({**cfg.model, "out_channels": 192})
    with pytest.raises(ValueError, match="only it"):
        build_model({**cfg.model, "representation": "coarse"})
    big = build_model(load_config(CONFIGS / "v2_spectral.json").stage_config())
    assert 5e6 < count_params(big) < 2e7


def test_the_spectral_cascader_can_learn_on_its_generators_coarse(corpus, tmp_path):
    """cond_generator: a batch's COARSE conditioning remade by a frozen generator checkpoint (noised,
    then DDIM steps with guidance) has the conditioning's shape, differs from it and trains; a
    missing checkpoint, a generator of another representation and a bad time range are refused."""
    from n2m.exporter.condgen import generated_cond

    gen = Trainer(_tiny_coarse(corpus), tmp_path / "gen")
    gen.run(1)
    cfg = load_config(CONFIGS / "tiny_generator.json")
    cfg.corpus, cfg.crop_frames = str(corpus), 64
    cfg.model.update(stage="spectral", representation="fine", in_channels=2 * FINE.n_mels + COARSE.n_bins,
                     out_channels=2 * FINE.n_mels, cond_aug_max=0.3, mel_mean=-1.5, mel_scale=3.4)
    cfg.cond_generator, cfg.cond_generator_prob, cfg.cond_generator_steps = str(tmp_path / "gen" / "last.pt"), 1.0, 2
    trainer = Trainer(cfg, tmp_path / "spec")
    batch = trainer.data.batch(np.random.default_rng(0), 2)
    cond = batch["mel"][:, 2 * FINE.n_mels:]
    text, mask = trainer.text.batch(batch["captions"])
    made = generated_cond(trainer.cond_gen, trainer.cfg, trainer.schedule, trainer.text, cond, batch, text, mask)
    assert made.shape == cond.shape and torch.isfinite(made).all()
    assert torch.equal(made[:, :, 0::2], made[:, :, 1::2])  # 50 frames/s repeated to 100, as the COARSE is
    assert (made - cond).abs().mean() > 1e-3
    assert np.isfinite(trainer.train_step())
    # inputs tried: a checkpoint path that does not exist; the 80-bin mel generator's checkpoint
    cfg.cond_generator = str(tmp_path / "nope.pt")
    with pytest.raises(ConfigError, match="no such checkpoint"):
        Trainer(cfg, tmp_path / "spec2")
    mel_cfg = load_config(CONFIGS / "tiny_generator.json")
    mel_cfg.corpus = str(corpus)
    Trainer(mel_cfg, tmp_path / "melgen").run(1)
    cfg.cond_generator = str(tmp_path / "melgen" / "last.pt")
    with pytest.raises(ConfigError, match="not a COARSE generator"):
        Trainer(cfg, tmp_path / "spec3")
    # input tried: a time range past 1 in a config file
    raw = json.loads((CONFIGS / "v2_spectral_gencond.json").read_text())
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**raw, "cond_generator_t": [0.5, 1.5]}))
    with pytest.raises(ConfigError, match="cond_generator_t"):
        load_config(bad)
