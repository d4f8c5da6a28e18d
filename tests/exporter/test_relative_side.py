"""The spectral cascader's relative side (the side's log-mel minus the mid's): its training crops,
the rebase that warm-starts it from an absolute-side cascader, and the configs that are refused."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import torch

from n2m.bridge.features import COARSE, FINE
from n2m.exporter.corpus.reader import CorpusReader
from n2m.exporter.data import SpectralData, write_synthetic_corpus
from n2m.exporter.export.warmstart import WarmStartError, init_state, rebase_side, stage_state_dict
from n2m.exporter.models.configs import tiny_spectral_config
from n2m.exporter.models.unet import build_model
from n2m.exporter.train import ConfigError, Trainer, load_config

CONFIGS = Path(__file__).resolve().parents[2] / "exporter" / "configs"
B = FINE.n_mels


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_synthetic_corpus(tmp_path_factory.mktemp("fine"), n_clips=4, seconds=3.0, seed=5, fine=True)


def _inputs(frames: int = 64, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    n = 2
    return dict(t=torch.rand(n, generator=g), text=torch.randn(n, 5, 384, generator=g), text_mask=torch.ones(n, 5),
                bpm=torch.tensor([0.0, 120.0]), key=torch.tensor([0, 3]), mode=torch.tensor([0, 2]),
                meter=torch.tensor([0, 1]), grid=torch.rand(n, 4, frames, generator=g),
                cond=torch.randn(n, COARSE.n_bins, frames, generator=g))


def _v(model, z_mid, z_side, kw):
    with torch.no_grad():
        return model.eval()(torch.cat([z_mid, z_side], 1), **kw)


def test_rebased_weights_compute_the_same_function():
    """f_rel(z_mid, z_side - z_mid) = (v_mid, v_side - v_mid) for random weights and inputs: the
    relative-side run starts where the absolute one stands."""
    torch.manual_seed(3)
    absolute = build_model(tiny_spectral_config())
    for p in absolute.parameters():
        torch.nn.init.normal_(p, std=0.1)
    relative = build_model(replace(tiny_spectral_config(), side="relative"))
    relative.load_state_dict(rebase_side(absolute.state_dict()))
    kw = _inputs()
    z_mid, z_side = torch.randn(2, B, 64), torch.randn(2, B, 64)
    va, vr = _v(absolute, z_mid, z_side, kw), _v(relative, z_mid, z_side - z_mid, kw)
    assert va[:, B:].abs().mean() > 0.05  # the check is not on an all-zero output
    torch.testing.assert_close(vr[:, :B], va[:, :B], atol=1e-5, rtol=0)
    torch.testing.assert_close(vr[:, B:], va[:, B:] - va[:, :B], atol=1e-5, rtol=0)
    # without the rebase the same weights do not: the input and output spaces differ
    relative.load_state_dict(absolute.state_dict())
    assert (_v(relative, z_mid, z_side - z_mid, kw)[:, B:] - (va[:, B:] - va[:, :B])).abs().max() > 1e-2


def test_relative_crops_hold_side_minus_mid(corpus):
    """The crops' mid and COARSE rows are as before; the side rows are the normalised side minus
    the normalised mid (so side - mid in log-mel divided by the scale)."""
    absolute = SpectralData(corpus, "train", crop_frames=64)
    relative = SpectralData(corpus, "train", crop_frames=64, side="relative")
    clip = absolute.clips[0]
    a, r = absolute.signal(clip)[0], relative.signal(clip)[0]
    fine = CorpusReader(corpus).fine(clip)
    np.testing.assert_array_equal(r[:B], a[:B])
    np.testing.assert_array_equal(r[2 * B:], a[2 * B:])
    np.testing.assert_allclose(r[B:2 * B] * 3.4, fine[1] - fine[0], atol=1e-4)
    assert np.abs(r[B:2 * B] - a[B:2 * B]).max() > 0.1


def _spectral_cfg(corpus: Path, side: str):
    cfg = load_config(CONFIGS / "tiny_generator.json")
    cfg.corpus, cfg.crop_frames = str(corpus), 64
    cfg.model = {**asdict(tiny_spectral_config()), "side": side}
    return cfg


def test_a_relative_run_warm_starts_from_an_absolute_model(corpus, tiny_fine_dir, tmp_path):
    """--init with the tiny fine route's folder (absolute side; weights recovered from its ONNX
    graph) and with a checkpoint: the relative run's model is the rebased source, trains, and
    resumes; a relative source for an absolute run is refused (no rebase goes that way)."""
    source = stage_state_dict(tiny_fine_dir, "spectral")
    trainer = Trainer(_spectral_cfg(corpus, "relative"), tmp_path / "rel")
    trainer.init_from(tiny_fine_dir)
    want = rebase_side(source)
    for k, v in want.items():
        assert torch.equal(trainer.model.state_dict()[k], v), k
    assert np.isfinite(trainer.train_step())
    trainer.save()
    # a checkpoint of an absolute run also rebases; one of a relative run warm-starts it as is
    absolute = Trainer(_spectral_cfg(corpus, "absolute"), tmp_path / "abs")
    absolute.init_from(tiny_fine_dir)
    absolute.save()
    got = init_state(tmp_path / "abs" / "last.pt", "spectral", trainer.stage_cfg)
    assert torch.equal(got["conv_out.bias"], want["conv_out.bias"])
    again = init_state(tmp_path / "rel" / "last.pt", "spectral", trainer.stage_cfg)
    assert torch.equal(again["conv_out.bias"], trainer.ema.model.state_dict()["conv_out.bias"])
    # input tried: the relative run's checkpoint as the start of an absolute run
    with pytest.raises(WarmStartError, match="different model config"):
        init_state(tmp_path / "rel" / "last.pt", "spectral", absolute.stage_cfg)


def test_side_modes_are_checked(tmp_path):
    """Inputs tried: an unknown side mode; a relative side on the generator."""
    with pytest.raises(ValueError, match="side 'sideways'"):
        replace(tiny_spectral_config(), side="sideways")
    from n2m.exporter.models.configs import tiny_coarse_generator_config

    with pytest.raises(ValueError, match="spectral stage only"):
        replace(tiny_coarse_generator_config(), side="relative")
    assert load_config(CONFIGS / "v3_spectral_relside.json").stage_config().side == "relative"
    raw = json.loads((CONFIGS / "v3_spectral_relside.json").read_text())
    raw["model"]["side"] = "sideways"
    (tmp_path / "bad.json").write_text(json.dumps(raw))
    with pytest.raises(ConfigError, match="sideways"):
        load_config(tmp_path / "bad.json")
