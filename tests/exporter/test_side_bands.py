"""Side bands: a coarse generator that also makes the stereo image's level per band (the side's
power over the mid's), measured from the corpus, set by the crossover, warm-started from a
generator without them, exported and run by the engine."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import torch

from n2m.bridge.engine import Engine
from n2m.bridge.features import (
    COARSE,
    FINE,
    SIDE_BAND_FLOOR,
    apply_side_bands,
    band_edges,
    coarse_rows,
    fine_mel,
    side_bands,
    smooth_side_bands,
)
from n2m.bridge.manifest import Manifest, ModelError
from n2m.bridge.request import from_options
from n2m.bridge.spectral import crossover
from n2m.exporter.corpus.reader import CorpusReader
from n2m.exporter.data import GeneratorData, write_synthetic_corpus
from n2m.exporter.export.warmstart import (
    WarmStartError,
    init_state,
    stage_state_dict,
    widen_side_bands,
)
from n2m.exporter.models.configs import config_from_dict, tiny_coarse_generator_config
from n2m.exporter.models.unet import build_model
from n2m.exporter.train import Trainer, load_config

CONFIGS = Path(__file__).resolve().parents[2] / "exporter" / "configs"
BANDS = 8
SPEC = replace(COARSE, side_bands=BANDS)
ROWS = COARSE.n_bins + BANDS


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_synthetic_corpus(tmp_path_factory.mktemp("sides"), n_clips=4, seconds=3.0, seed=9, fine=True)


def _stereo(seconds: float = 2.0, width: float = 0.3, seed: int = 0) -> np.ndarray:
    """Two partly independent noises with a tone: a mix whose side sits below its mid."""
    rng = np.random.default_rng(seed)
    n = int(FINE.sample_rate * seconds)
    common = rng.standard_normal(n) + np.sin(2 * np.pi * 440 * np.arange(n) / FINE.sample_rate)
    return (0.1 * (common[None] + width * rng.standard_normal((2, n)))).astype(np.float32)


def _loud(fine: np.ndarray) -> np.ndarray:
    """[bands, coarse frames]: where the mid's band is within 30 dB of its loudest."""
    e = band_edges(FINE.n_mels, BANDS)
    p = np.stack([np.exp(fine[0, lo:hi]).sum(0) for lo, hi in zip(e[:-1], e[1:], strict=True)])
    p = p[:, : p.shape[1] // 2 * 2].reshape(BANDS, -1, 2).mean(2)
    return p > 1e-3 * p.max()


def test_side_bands_measure_the_side_against_the_mid() -> None:
    """A wider mix reads higher; a centred (mono) one reads the floor; every value in [floor, 0]."""
    narrow, wide = side_bands(fine_mel(_stereo(width=0.1)), SPEC), side_bands(fine_mel(_stereo(width=1.0)), SPEC)
    mono = side_bands(fine_mel(np.repeat(_stereo()[:1], 2, axis=0)), SPEC)
    assert narrow.shape == (BANDS, 100) and wide.min() >= SIDE_BAND_FLOOR and wide.max() <= 0
    assert np.median(wide - narrow) > 2.0  # e^2: over 8 dB wider
    np.testing.assert_array_equal(mono, SIDE_BAND_FLOOR)


def test_apply_side_bands_sets_the_level_and_keeps_the_detail() -> None:
    """A side moved 6 dB up or down comes back to the measured levels (median error < 0.05 nats in
    the audible bands); within a band the bins keep their shape; the side never passes the mid,
    the mid is untouched."""
    fine = fine_mel(_stereo(width=0.4))
    target = side_bands(fine, SPEC)
    loud = _loud(fine)
    for shift in (np.log(4.0), -np.log(4.0)):
        moved = fine.copy()
        moved[1] += shift
        out = apply_side_bands(moved, target, SPEC)
        err = np.abs(side_bands(out, SPEC) - target)[loud]
        assert np.median(err) < 0.05
        np.testing.assert_array_equal(out[0], fine[0])
        assert (out[1] <= out[0]).all()
    # detail: a side with a notch keeps its notch relative to its band's neighbours
    notched = fine.copy()
    notched[1, 30] -= 3.0
    out = apply_side_bands(notched, target, SPEC)
    assert np.median(out[1, 29] - out[1, 30]) > 2.0


def test_crossover_takes_the_generators_side_bands() -> None:
    """The crossover with coarse rows that carry side bands: the mid below 8 kHz is the coarse
    mel's as before, the side's band levels are the generator's (their half-second running mean),
    not the cascader's."""
    fine = fine_mel(_stereo(width=0.2))[:, :, :200]
    wanted = side_bands(fine_mel(_stereo(width=1.0, seed=1)), SPEC)
    coarse = np.concatenate([coarse_rows(fine, COARSE), wanted])
    out = crossover(fine, coarse, SPEC)
    plain = crossover(fine, coarse[:COARSE.n_bins], COARSE)
    np.testing.assert_array_equal(out[0], plain[0])
    loud = _loud(out)
    smooth = smooth_side_bands(wanted, SPEC)
    assert np.median(np.abs(side_bands(out, SPEC) - smooth)[loud]) < 0.05
    assert np.median(np.abs(side_bands(plain, SPEC) - smooth)[loud]) > 1.0


def test_noisy_side_rows_keep_their_level() -> None:
    """Side rows with the frame-to-frame noise a sampler leaves (3.4 nats, one normalised unit)
    about a steady -15 dB image: the crossover's image stays within 1.5 dB of it, where applied
    frame by frame the noise (clipped at 0) widens it by over 4 dB. A loop's smoothing wraps round:
    a ramp's first frame averages in its last ones; a clip's end averages only its own frames."""
    fine = fine_mel(_stereo(width=0.2, seconds=4.0))
    target = np.full((BANDS, fine.shape[-1] // 2), np.log(10 ** -1.5))
    noisy = target + 3.4 * np.random.default_rng(3).standard_normal(target.shape)
    coarse = np.concatenate([coarse_rows(fine, COARSE)[:, : target.shape[1]], noisy])
    def image_db(f: np.ndarray) -> float:
        p = np.maximum(np.exp(f.astype(np.float64)) - FINE.log_floor, 0)
        return float(10 * np.log10(p[1].sum() / p[0].sum()))
    smoothed = image_db(crossover(fine, coarse, SPEC))
    frame_by_frame = image_db(apply_side_bands(crossover(fine, coarse[:COARSE.n_bins], COARSE), noisy, SPEC))
    assert abs(smoothed + 15.0) < 1.5 and frame_by_frame > -11.0
    ramp = np.tile(np.linspace(-6.0, 0.0, 100), (BANDS, 1))
    looped, clip = smooth_side_bands(ramp, SPEC, circular=True), smooth_side_bands(ramp, SPEC)
    assert looped[0, 0] > clip[0, 0] + 2.0
    np.testing.assert_allclose(clip[0, 0], ramp[0, :13].mean(), rtol=1e-5)  # frames 0..12 of a 25-frame window


def test_generator_crops_carry_the_side_bands(corpus) -> None:
    """The crops' first rows are the COARSE mel as without side bands; the next 8 are the clip's
    side bands from its FINE cache, normalised alike."""
    plain = GeneratorData(corpus, "train", crop_frames=32, mel_mean=-1.5, mel_scale=3.4, representation="coarse")
    sided = GeneratorData(corpus, "train", crop_frames=32, mel_mean=-1.5, mel_scale=3.4, representation="coarse",
                          side_bands=BANDS)
    clip = plain.clips[0]
    a, s = plain.signal(clip)[0], sided.signal(clip)[0]
    assert s.shape == (ROWS, a.shape[1])
    np.testing.assert_array_equal(s[:COARSE.n_bins], a)
    want = side_bands(CorpusReader(corpus).fine(clip), SPEC)
    k = want.shape[1]
    np.testing.assert_allclose(s[COARSE.n_bins:, :k] * 3.4 - 1.5, want, atol=1e-5)
    assert sided.batch(np.random.default_rng(0), 2)["mel"].shape == (2, ROWS, 32)
    # input tried: side bands on the 80-bin mel representation
    with pytest.raises(ValueError, match="COARSE representation"):
        GeneratorData(corpus, "train", representation="mel", side_bands=BANDS)


def test_side_band_configs_are_checked() -> None:
    """Inputs tried: side bands with the COARSE mel's channel count only; side bands on the
    spectral stage; more bands than FINE has bins."""
    base = tiny_coarse_generator_config()
    with pytest.raises(ValueError, match=f"in_channels = out_channels = {ROWS}"):
        replace(base, side_bands=BANDS)
    from n2m.exporter.models.configs import tiny_spectral_config

    with pytest.raises(ValueError, match="coarse generator only"):
        replace(tiny_spectral_config(), side_bands=BANDS)
    with pytest.raises(ValueError, match="side_bands 500"):
        replace(base, side_bands=500, in_channels=COARSE.n_bins + 500, out_channels=COARSE.n_bins + 500)
    cfg = load_config(CONFIGS / "v3_generator_side.json").stage_config()
    assert cfg.side_bands == BANDS and cfg.in_channels == cfg.out_channels == ROWS


def _sided(cfg=None):
    cfg = cfg or tiny_coarse_generator_config()
    return replace(cfg, side_bands=BANDS, in_channels=ROWS, out_channels=ROWS)


def test_widened_weights_keep_the_mel_rows() -> None:
    """Random weights widened by 8 side bands: the mel rows' output is the source's whatever the
    side-band input holds, the side rows start at zero."""
    torch.manual_seed(1)
    src = build_model(tiny_coarse_generator_config())
    for p in src.parameters():
        torch.nn.init.normal_(p, std=0.1)
    wide = build_model(_sided())
    wide.load_state_dict(widen_side_bands(src.state_dict(), COARSE.n_bins, BANDS))
    g = torch.Generator().manual_seed(2)
    n, frames = 2, 32
    kw = dict(t=torch.rand(n, generator=g), text=torch.randn(n, 5, 384, generator=g), text_mask=torch.ones(n, 5),
              bpm=torch.tensor([0.0, 120.0]), key=torch.tensor([0, 3]), mode=torch.tensor([0, 2]),
              meter=torch.tensor([0, 1]), grid=torch.rand(n, 4, frames, generator=g))
    x = torch.randn(n, COARSE.n_bins, frames, generator=g)
    with torch.no_grad():
        v_src = src.eval()(x, **kw)
        v_wide = wide.eval()(torch.cat([x, 3 * torch.randn(n, BANDS, frames, generator=g)], 1), **kw)
    assert v_src.abs().mean() > 0.05
    torch.testing.assert_close(v_wide[:, :COARSE.n_bins], v_src, atol=1e-5, rtol=0)
    assert v_wide[:, COARSE.n_bins:].abs().max() == 0


@pytest.fixture(scope="module")
def sided_dir(corpus, tiny_fine_dir, tmp_path_factory) -> Path:
    """The tiny fine route's generator widened by --init, trained 2 steps on side bands, exported
    with the tiny fine route's spectral stage."""
    from n2m.exporter.export import ExportOptions, export_route, random_checkpoint

    work = tmp_path_factory.mktemp("sided")
    cfg = load_config(CONFIGS / "tiny_generator.json")
    gen = stage_state_dict(tiny_fine_dir, "generator")
    src_cfg = Manifest.load(tiny_fine_dir).stages["generator"].config
    cfg.corpus, cfg.crop_frames = str(corpus), 32
    cfg.model = asdict(_sided(config_from_dict(src_cfg)))
    trainer = Trainer(cfg, work / "run")
    trainer.init_from(tiny_fine_dir)
    np.testing.assert_array_equal(trainer.model.state_dict()["conv_out.weight"][:COARSE.n_bins].numpy(),
                                  gen["conv_out.weight"].numpy())
    for _ in range(2):
        assert np.isfinite(trainer.train_step())
    trainer.save()
    assert init_state(work / "run" / "last.pt", "generator", trainer.stage_cfg)["conv_out.bias"].shape == (ROWS,)
    # input tried: the widened run's checkpoint as the start of a run without side bands
    with pytest.raises(WarmStartError, match="different model config"):
        init_state(work / "run" / "last.pt", "generator", tiny_coarse_generator_config())
    spectral = random_checkpoint("spectral", work / "spectral.pt", seed=8)
    opts = ExportOptions(steps=4, vocoder_steps=2, variants=("fp32",), text_from=tiny_fine_dir, force=True, mel_max=2.0)
    export_route({"generator": work / "run" / "last.pt", "spectral": spectral}, work / "model", opts, log=lambda m: None)
    return work / "model"


def test_a_side_band_route_exports_and_makes_stereo(sided_dir: Path) -> None:
    """The manifest names the side bands and the generator's rows; the engine makes 2 s of stereo
    and reads a stereo source's side bands for an edit (a mono source's at the floor); a
    manifest whose generator rows disagree with its coarse representation is refused."""
    man = json.loads((sided_dir / "manifest.json").read_text())
    assert man["coarse"]["side_bands"] == BANDS and man["stages"]["generator"]["channels"] == ROWS
    eng = Engine.load(sided_dir, provider="cpu", threads=2)
    clip = eng.generate(from_options({"prompt": "wide pads", "seconds": 2.0, "seed": 3}))[0]
    assert clip.audio.shape == (2, 88200) and np.isfinite(clip.audio).all()
    assert not np.allclose(clip.audio[0], clip.audio[1])
    feats = eng.features(_stereo(width=0.5), FINE.sample_rate)
    assert feats.shape == (ROWS, 101)  # 201 FINE frames: the last coarse frame is a half one
    want = side_bands(fine_mel(_stereo(width=0.5)), SPEC)
    np.testing.assert_allclose(feats[COARSE.n_bins:, :100], want, atol=1e-4)
    np.testing.assert_array_equal(feats[COARSE.n_bins:, 100], feats[COARSE.n_bins:, 99])
    np.testing.assert_array_equal(eng.features(_stereo()[0], FINE.sample_rate)[COARSE.n_bins:], SIDE_BAND_FLOOR)
    # input tried: the manifest's coarse representation without its side bands
    bad = {**man, "coarse": {k: v for k, v in man["coarse"].items() if k != "side_bands"}}
    with pytest.raises(ModelError, match=f"generator makes {ROWS} rows, its coarse representation has {COARSE.n_bins}"):
        Manifest.from_dict(bad)
