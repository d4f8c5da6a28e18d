"""The exported graphs: fused op types, parity with PyTorch, the manifest, and the export CLI."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")

from n2m.bridge.controls import Controls, resolve  # noqa: E402
from n2m.bridge.engine import Engine, Request  # noqa: E402
from n2m.bridge.manifest import Manifest  # noqa: E402
from n2m.exporter.export import (  # noqa: E402
    load_checkpoint,
    main,
    onnx_unet,  # noqa: E402
)


@pytest.fixture(scope="module")
def models(tiny_checkpoints) -> dict[str, torch.nn.Module]:
    gen, voc = tiny_checkpoints
    return {"generator": load_checkpoint(gen)[0], "vocoder": load_checkpoint(voc)[0]}


@pytest.mark.parametrize("stage", ["generator", "vocoder"])
def test_fused_op_types(tiny_model_dir: Path, models, stage: str) -> None:
    counts = onnx_unet.op_counts(tiny_model_dir / f"{stage}.onnx")
    blocks = onnx_unet.attention_blocks(models[stage])
    assert counts.get("Attention", 0) == blocks  # one fused node per attention block
    assert "Softmax" not in counts  # no leftover MatMul/Softmax attention
    assert "GroupNormalization" not in counts
    assert counts["InstanceNormalization"] == sum(
        1 for m in models[stage].modules() if isinstance(m, torch.nn.GroupNorm))
    if stage == "generator":
        assert blocks == 6  # self + cross attention at 3 places of the tiny U-Net
    onnx_unet.check_fused(tiny_model_dir / f"{stage}.onnx", blocks)


def test_text_encoder_has_bert_fusions(tiny_model_dir: Path) -> None:
    counts = onnx_unet.op_counts(tiny_model_dir / "text_encoder.onnx")
    assert counts["Attention"] == 6 and counts["SkipLayerNormalization"] == 12
    assert counts["BiasGelu"] == 6 and counts["EmbedLayerNormalization"] == 1
    assert "Softmax" not in counts


def test_dynamic_axes_are_named(tiny_model_dir: Path) -> None:
    import onnx

    m = onnx.load(str(tiny_model_dir / "generator.onnx"), load_external_data=False)
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in m.graph.input}
    assert dims["x"] == ["batch", 80, "frames"] and dims["text"] == ["batch", "tokens", 384]
    assert dims["grid"] == ["batch", 4, "frames"] and dims["key"] == ["batch"]
    v = onnx.load(str(tiny_model_dir / "vocoder.onnx"), load_external_data=False)
    vdims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in v.graph.input}
    assert vdims["x"] == ["batch", 1, "samples"] and vdims["mel"] == ["batch", 80, "frames"]


@pytest.mark.parametrize("stage", ["generator", "vocoder"])
def test_parity_with_torch_fp32(tiny_model_dir: Path, models, stage: str) -> None:
    sess = onnx_unet.ort_session(tiny_model_dir / f"{stage}.onnx")
    tokens = (16, 32) if stage == "generator" else (16,)
    worst = 0.0
    for batch, frames, tok in itertools.product((1, 2, 3), (128, 256, 512), tokens):
        p = onnx_unet.parity(models[stage], sess, batch=batch, frames=frames, tokens=tok, seed=batch * frames + tok)
        assert p.max_abs < 1e-4, (batch, frames, tok, p)
        worst = max(worst, p.max_abs)
    assert worst > 0.0  # the comparison saw real, non-trivial outputs


def test_fp16_variant_close_on_cpu(tiny_model_dir: Path, models) -> None:
    p = onnx_unet.parity(models["generator"], tiny_model_dir / "generator.fp16.onnx", batch=2, frames=128)
    assert p.rel_l2 < 1e-2


def test_manifest_records_export(tiny_model_dir: Path, models) -> None:
    m = Manifest.load(tiny_model_dir)
    assert m.generator.parity["fp32_max_abs"] < 1e-4
    assert m.generator.files["fp16"] == "generator.fp16.onnx"
    for stage in ("generator", "vocoder"):
        s = m.stages[stage]
        assert ("int8" in s.files) == (s.parity["int8_rel_l2"] <= 0.05)  # int8 only where parity passed
        assert s.params == sum(p.numel() for p in models[stage].parameters())
    assert m.vocoder.audio_scale == models["vocoder"].cfg.audio_scale
    assert m.exporter["opset"] == 23 and m.corpus_id == "random-weights"


def test_exported_files_carry_no_machine_paths(tiny_model_dir: Path) -> None:
    """No exporter stack traces or name scopes in the graphs, and no absolute path anywhere in the
    graphs or the manifest (every variant of every stage, and the text encoder)."""
    repo = str(Path(__file__).resolve().parents[2])
    for f in sorted(tiny_model_dir.glob("*.onnx")):
        proto = onnx.load(str(f), load_external_data=False)
        assert not any(len(n.metadata_props) or n.doc_string for n in proto.graph.node), f.name
        assert repo.encode() not in f.read_bytes(), f.name
    assert repo not in (tiny_model_dir / "manifest.json").read_text()


def test_engine_matches_the_torch_cascade(tiny_model_dir: Path, models) -> None:
    """The whole runtime (tokenizer, ONNX text encoder, guidance batching, samplers, vocoder)
    against the training-side torch pipeline on the same weights and seed."""
    from n2m.exporter.models.pipeline import GeneratorRunner, SampleOptions, VocoderRunner
    from n2m.exporter.textenc import TextCache

    prompt = "warm lofi piano in F# minor, 72 bpm, 3/4"
    controls = resolve(prompt, Controls(seconds=2.0))
    engine = Engine.load(tiny_model_dir, provider="cpu", threads=1)
    clip = engine.generate(Request(prompt, controls, seed=3))[0]
    frames = engine.frames_for(2.0)
    mel = GeneratorRunner(models["generator"], TextCache()).generate(
        prompt, controls, frames, seed=3, opts=SampleOptions(steps=4, guidance=3.0, sampler="dpmpp_2m"))
    audio = VocoderRunner(models["vocoder"]).vocode(mel, seed=3, steps=3, sampler="dpmpp_2m")
    ref = audio[: clip.audio.shape[0]]
    assert np.abs(clip.audio - ref).max() < 1e-3 * max(1.0, float(np.abs(ref).max()))


def test_cli_errors(tmp_path: Path, tiny_checkpoints, capsys) -> None:
    gen, voc = tiny_checkpoints
    assert main([str(gen), "--out", str(tmp_path / "m")]) == 2
    assert "no vocoder (mel route) or spectral (fine route) checkpoint" in capsys.readouterr().err
    assert main([str(gen), str(gen), "--out", str(tmp_path / "m")]) == 2
    assert "two generator checkpoints" in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    assert main(["--generator", str(gen), "--vocoder", str(voc), "--out", str(tmp_path / "full")]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["--generator", str(tmp_path / "no.pt"), "--vocoder", str(voc), "--out", str(tmp_path / "m")]) == 2
    assert "not found" in capsys.readouterr().err
    for bad, says in (("0.9,0.3", "need 0 <= LO < HI <= 1"), ("0,2", "need 0 <= LO < HI <= 1"),
                      ("half", "give LO,HI")):
        assert main(["--generator", str(gen), "--vocoder", str(voc), "--out", str(tmp_path / "m"),
                     "--guidance-interval", bad]) == 2
        assert says in capsys.readouterr().err
    for flag in ("--guidance", "--edit-guidance"):  # a scale above --guidance-max (15)
        assert main(["--generator", str(gen), "--vocoder", str(voc), "--out", str(tmp_path / "m"), flag, "20"]) == 2
        assert "outside 0..15" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


@pytest.mark.slow
def test_cli_export_positional_tiny_text(tmp_path: Path, tiny_checkpoints) -> None:
    gen, voc = tiny_checkpoints
    out = tmp_path / "cli_model"
    assert main([str(voc), str(gen), "--out", str(out), "--tiny-text", "--variants", "fp32",
                 "--steps", "2", "--vocoder-steps", "2"]) == 0
    m = Manifest.load(out)
    m.verify(out)
    assert m.text_encoder.random_weights and set(m.generator.files) == {"fp32"}
    clip = Engine.load(out, provider="cpu", threads=1).generate(
        Request("x", Controls(seconds=2.0), seed=0))[0]
    assert clip.audio.shape == (32000,)
