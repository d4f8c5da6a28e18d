"""The cascade's U-Nets: shapes, conditioning paths, configs."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from n2m.exporter.models.unet import (
    UNet1d,
    UNetConfig,
    Vocoder1d,
    VocoderConfig,
    build_model,
    config_from_dict,
    count_params,
    tiny_generator_config,
    tiny_vocoder_config,
)


def _randomise(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give the zero-initialised output layers weights, so every input path reaches the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return model.eval()


def _gen_inputs(b: int = 2, f: int = 32, L: int = 6) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    mask = torch.ones(b, L)
    mask[1, 4:] = 0.0
    return {
        "x": torch.randn(b, 80, f, generator=g), "t": torch.tensor([0.3, 0.8])[:b],
        "text": torch.randn(b, L, 384, generator=g), "text_mask": mask,
        "bpm": torch.tensor([120.0, 90.0])[:b], "key": torch.tensor([10, 3])[:b],
        "mode": torch.tensor([2, 1])[:b], "meter": torch.tensor([1, 2])[:b],
        "grid": torch.randn(b, 4, f, generator=g),
    }


def test_generator_shapes_and_tiny_size():
    model = build_model(tiny_generator_config())
    assert isinstance(model, UNet1d)
    assert count_params(model) < 40_000
    v = model(**_gen_inputs())
    assert v.shape == (2, 80, 32) and v.dtype == torch.float32


def test_default_sizes_fit_the_speed_budget():
    assert 3e6 < count_params(build_model(UNetConfig())) < 7e6
    assert 1e6 < count_params(build_model(VocoderConfig())) < 4e6
    assert VocoderConfig().hop == 320


@pytest.mark.parametrize("control", ["text", "bpm", "key", "mode", "meter", "grid"])
def test_each_control_can_be_unspecified_and_matters(control):
    model = _randomise(build_model(tiny_generator_config()))
    inp = _gen_inputs()
    dropped = dict(inp)
    if control == "text":
        dropped["text"] = torch.zeros_like(inp["text"])
    elif control == "bpm":
        dropped["bpm"] = torch.zeros_like(inp["bpm"])
    elif control == "grid":
        dropped["grid"] = torch.zeros_like(inp["grid"])
    else:
        dropped[control] = torch.zeros_like(inp[control])
    with torch.no_grad():
        a, b = model(**inp), model(**dropped)
    assert torch.isfinite(b).all()
    assert (a - b).abs().max() > 1e-4


def test_unspecified_bpm_uses_learned_vector_and_gradients_stay_finite():
    model = build_model(tiny_generator_config())
    inp = _gen_inputs()
    inp["bpm"] = torch.zeros(2)
    model(**inp).square().mean().backward()
    assert model.bpm_unspecified.grad is not None
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_text_padding_is_masked():
    model = _randomise(build_model(tiny_generator_config()))
    inp = _gen_inputs()
    other = dict(inp)
    text = inp["text"].clone()
    text[1, 4:] = 100.0  # padded positions of item 1
    other["text"] = text
    with torch.no_grad():
        assert torch.allclose(model(**inp)[1], model(**other)[1], atol=1e-5)


def test_vocoder_shapes():
    model = build_model(tiny_vocoder_config())
    assert isinstance(model, Vocoder1d)
    f = 10
    v = model(torch.randn(2, 1, f * 320), torch.rand(2), torch.randn(2, 80, f))
    assert v.shape == (2, 1, f * 320)


def test_vocoder_depends_on_mel():
    model = _randomise(build_model(tiny_vocoder_config()))
    x, t = torch.randn(1, 1, 3200), torch.tensor([0.5])
    with torch.no_grad():
        assert (model(x, t, torch.randn(1, 80, 10)) - model(x, t, torch.randn(1, 80, 10))).abs().max() > 1e-4


def test_config_round_trip_and_errors():
    cfg = tiny_generator_config()
    again = config_from_dict(dataclasses.asdict(cfg))
    assert again == cfg
    assert isinstance(build_model(dataclasses.asdict(tiny_vocoder_config())), Vocoder1d)
    with pytest.raises(ValueError, match="unknown stage"):
        config_from_dict({"stage": "mystery"})
    with pytest.raises(ValueError, match="unknown generator config fields"):
        config_from_dict({"stage": "generator", "chanels": [8]})
    with pytest.raises(ValueError, match="odd"):
        UNetConfig(kernel_size=4)
    with pytest.raises(ValueError, match="strides"):
        VocoderConfig(channels=(8, 8), strides=(4, 4))
    assert cfg.mel_norm == {"mean": cfg.mel_mean, "scale": cfg.mel_scale}
