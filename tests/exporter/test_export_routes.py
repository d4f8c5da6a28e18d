"""Export of the waveform route and the superres stage: fused op types, parity with PyTorch, the
manifest's route, the CLI, and warm-starting a new stage from its exported graph."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from n2m.bridge.manifest import Manifest  # noqa: E402
from n2m.exporter.export import (  # noqa: E402
    load_checkpoint,
    main,
    onnx_unet,  # noqa: E402
    route_of,
)

STAGES = ("wavegen", "cascader", "superres")


@pytest.fixture(scope="module")
def models(tiny_wave_checkpoints) -> dict[str, torch.nn.Module]:
    return {s: load_checkpoint(p)[0] for s, p in tiny_wave_checkpoints.items()}


@pytest.mark.parametrize("stage", STAGES)
def test_fused_op_types(tiny_wave_superres_dir: Path, models, stage: str) -> None:
    path = tiny_wave_superres_dir / f"{stage}.onnx"
    counts = onnx_unet.op_counts(path)
    blocks = onnx_unet.attention_blocks(models[stage])
    assert counts.get("Attention", 0) == blocks  # one fused node per attention block
    assert "Softmax" not in counts and "GroupNormalization" not in counts
    assert counts["InstanceNormalization"] == sum(
        1 for m in models[stage].modules() if isinstance(m, torch.nn.GroupNorm))
    if stage == "wavegen":
        assert blocks == 6  # self + cross attention at the bottleneck: down, mid, up
    else:
        assert blocks == 0
    onnx_unet.check_fused(path, blocks)


@pytest.mark.parametrize("stage", STAGES)
def test_parity_with_torch_fp32(tiny_wave_superres_dir: Path, models, stage: str) -> None:
    sess = onnx_unet.ort_session(tiny_wave_superres_dir / f"{stage}.onnx")
    tokens = (16, 32) if stage == "wavegen" else (16,)
    worst = 0.0
    for batch, frames, tok in itertools.product((1, 3), (16, 64, 128), tokens):
        p = onnx_unet.parity(models[stage], sess, batch=batch, frames=frames, tokens=tok, seed=batch * frames + tok)
        assert p.max_abs < 1e-4, (stage, batch, frames, tok, p)
        worst = max(worst, p.max_abs)
    assert worst > 0.0


@pytest.mark.parametrize("stage", STAGES)
def test_fp16_and_int8_variants_convert(tiny_wave_superres_dir: Path, models, stage: str, tmp_path: Path) -> None:
    """The fixture ships fp32 only; the default export also converts these graphs."""
    src = tiny_wave_superres_dir / f"{stage}.onnx"
    half = onnx_unet.to_fp16(src, tmp_path / f"{stage}.fp16.onnx")
    assert "Softmax" not in onnx_unet.op_counts(half)
    int8 = onnx_unet.to_int8(src, tmp_path / f"{stage}.int8.onnx")
    p = onnx_unet.parity(models[stage], int8, batch=2, frames=16)
    assert np.isfinite(p.rel_l2) and p.rel_l2 < 0.5


def test_dynamic_axes_are_named(tiny_wave_superres_dir: Path) -> None:
    import onnx

    def dims(stage: str) -> dict:
        m = onnx.load(str(tiny_wave_superres_dir / f"{stage}.onnx"), load_external_data=False)
        return {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in m.graph.input}

    w = dims("wavegen")
    assert w["x"] == ["batch", 1, "samples"] and w["grid"] == ["batch", 4, "frames"]
    for stage in ("cascader", "superres"):
        c = dims(stage)
        assert c["x"] == c["cond"] == ["batch", 1, "samples"] and c["aug"] == ["batch"]


def test_manifest_records_the_route(tiny_wave_superres_dir: Path, models) -> None:
    m = Manifest.load(tiny_wave_superres_dir)
    m.verify(tiny_wave_superres_dir)
    assert m.route == "wave" and m.stage_names == ["wavegen", "cascader", "superres"]
    assert m.sample_rate == 48000 and m.hop == 960 and m.frame_rate == 50 and m.mel_max is None
    assert m.generator is m.stages["wavegen"] and m.generator.guidance is not None
    assert m.generator.rate == 3200 and m.generator.frame_multiple == 1 and m.generator.output_kind == "audio"
    assert m.stages["cascader"].rate == 16000 and m.stages["cascader"].cond_rate == 3200
    assert m.stages["superres"].rate == 48000 and m.stages["superres"].cond_rate == 16000
    assert m.stages["superres"].default_steps == 2 and m.stages["cascader"].default_steps == 3
    for s in ("cascader", "superres"):
        assert m.stages[s].inputs == ["x", "t", "cond", "aug"]
        assert 0 < m.stages[s].cond_aug <= models[s].cfg.aug_max
        assert m.stages[s].guidance is None
    for s in STAGES:
        assert m.stages[s].parity["fp32_max_abs"] < 1e-4
        assert m.stages[s].params == sum(p.numel() for p in models[s].parameters())
        assert m.stages[s].audio_scale == models[s].cfg.audio_scale


def test_routes_from_checkpoints() -> None:
    assert route_of({"generator": "g", "vocoder": "v"}) == "mel"
    assert route_of({"wavegen": "w", "cascader": "c", "superres": "s"}) == "wave"
    with pytest.raises(ValueError, match="no cascader checkpoint.*--wavegen W.pt --cascader C.pt"):
        route_of({"wavegen": "w"})
    with pytest.raises(ValueError, match="mix routes"):
        route_of({"generator": "g", "vocoder": "v", "cascader": "c"})
    with pytest.raises(ValueError, match="no generator"):
        route_of({"superres": "s"})


def test_cli_errors(tmp_path: Path, tiny_wave_checkpoints, tiny_checkpoints, capsys) -> None:
    w, c = tiny_wave_checkpoints["wavegen"], tiny_wave_checkpoints["cascader"]
    gen, _ = tiny_checkpoints
    assert main([str(w), "--out", str(tmp_path / "m")]) == 2
    assert "no cascader checkpoint" in capsys.readouterr().err
    assert main([str(w), str(c), str(gen), "--out", str(tmp_path / "m")]) == 2
    assert "mix routes" in capsys.readouterr().err
    assert main(["--wavegen", str(c), "--cascader", str(c), "--out", str(tmp_path / "m")]) == 2
    assert "is not a wavegen checkpoint" in capsys.readouterr().err
    assert main([str(w), "--wavegen", str(w), "--cascader", str(c), "--out", str(tmp_path / "m")]) == 2
    assert "given twice" in capsys.readouterr().err


def test_mismatched_superres_is_refused(tmp_path: Path, tiny_wave_checkpoints) -> None:
    import dataclasses

    from n2m.exporter.export import ExportOptions, export_route, random_checkpoint
    from n2m.exporter.models.unet import tiny_superres_config

    cfg = dataclasses.replace(tiny_superres_config(), cond_rate=24000)
    bad = random_checkpoint("superres", tmp_path / "sr.pt", config=cfg)
    ckpts = {**tiny_wave_checkpoints, "superres": bad}
    with pytest.raises(ValueError, match="superres stage is conditioned on 24000 Hz"):
        export_route(ckpts, tmp_path / "m", ExportOptions(tiny_text=True), log=lambda m: None)


@pytest.mark.slow
def test_cli_export_wave_route_tiny_text(tmp_path: Path, tiny_wave_checkpoints) -> None:
    from n2m.bridge.controls import Controls
    from n2m.bridge.engine import Engine, Request

    ck = tiny_wave_checkpoints
    out = tmp_path / "cli_model"
    assert main(["--wavegen", str(ck["wavegen"]), "--cascader", str(ck["cascader"]), "--out", str(out),
                 "--tiny-text", "--variants", "fp32", "--steps", "2", "--vocoder-steps", "2"]) == 0
    m = Manifest.load(out)
    assert m.route == "wave" and "superres" not in m.stages and m.sample_rate == 16000 and m.hop == 320
    clip = Engine.load(out, provider="cpu", threads=1).generate(
        Request("x", Controls(seconds=2.0), seed=0))[0]
    assert clip.audio.shape == (32000,) and clip.sample_rate == 16000


def test_warm_start_recovers_the_new_stages(tiny_wave_superres_dir: Path, models) -> None:
    from n2m.exporter.export.warmstart import stage_state_dict

    for stage in STAGES:
        state = stage_state_dict(tiny_wave_superres_dir, stage)  # checks parity with the graph itself
        ref = models[stage].state_dict()
        assert set(state) == set(ref)
        for k, v in ref.items():
            assert torch.allclose(state[k], v), (stage, k)
