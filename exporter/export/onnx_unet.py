"""Export of the cascade's 1D U-Nets (generator, vocoder) to ONNX with fused kernels.

`torch.onnx.export(dynamo=True)` at opset 23 with two custom translations:

- `aten.scaled_dot_product_attention` -> one standard ONNX `Attention` node (which ORT 1.31 runs
  on CPU and CUDA). The stock translation already emits `Attention`, but passes the cross-attention
  padding bias [B, 1, 1, L] as is, and ORT's kernel requires the mask's query axis to equal the
  query length; so ours expands the mask to [B, 1, N, L] first.
- `aten.group_norm` -> Reshape -> InstanceNormalization -> Reshape -> Mul -> Add. At opset >= 21
  the stock translation emits `GroupNormalization`, which ORT's CPU provider has no kernel for
  (it is expanded into hundreds of Casts, ~8% slower). InstanceNormalization has CPU and CUDA
  kernels.

SiLU stays Sigmoid*Mul, which ORT fuses at session time (QuickGelu). The "unfused" export
(opset 18, stock translations: MatMul/Softmax attention, decomposed GroupNorm) exists for the
benchmark. Dynamic axes are named batch, frames, tokens (samples for the vocoder's audio).

Variants: fp32 (CPU), fp16 with fp32 I/O (CUDA), int8 dynamic quantisation of MatMul/Gemm only
(CPU; shipped only if it passes parity). Graphs are saved before any ORT session optimisation, so
nothing hardware-specific is shipped.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch

GENERATOR_INPUTS = ["x", "t", "text", "text_mask", "bpm", "key", "mode", "meter", "grid"]
VOCODER_INPUTS = ["x", "t", "mel"]
CASCADER_INPUTS = ["x", "t", "cond", "aug"]  # audio-conditioned cascaders (waveform route, superres)
SPECTRAL_INPUTS = [*GENERATOR_INPUTS, "cond"]  # the fine route's cascader: text, controls and the COARSE mel
TEXT_STAGES = ("generator", "wavegen")
AUDIO_CASCADERS = ("cascader", "superres")
OUTPUT = "v"
OPSET_FUSED = 23
OPSET_UNFUSED = 18
FUSED_ATTENTION_OPS = ("Attention", "MultiHeadAttention")

# axis names of graph inputs/outputs, per stage
_AXES = {
    "generator": {
        "x": {0: "batch", 2: "frames"}, "t": {0: "batch"}, "text": {0: "batch", 1: "tokens"},
        "text_mask": {0: "batch", 1: "tokens"}, "bpm": {0: "batch"}, "key": {0: "batch"},
        "mode": {0: "batch"}, "meter": {0: "batch"}, "grid": {0: "batch", 2: "frames"},
        "v": {0: "batch", 2: "frames"},
    },
    "vocoder": {
        "x": {0: "batch", 2: "samples"}, "t": {0: "batch"}, "mel": {0: "batch", 2: "frames"},
        "v": {0: "batch", 2: "samples"},
    },
}
_AXES["spectral"] = {**_AXES["generator"], "cond": {0: "batch", 2: "frames"}}
_AXES["wavegen"] = {**_AXES["generator"], "x": {0: "batch", 2: "samples"}, "v": {0: "batch", 2: "samples"}}
_AXES["cascader"] = _AXES["superres"] = {
    "x": {0: "batch", 2: "samples"}, "t": {0: "batch"}, "cond": {0: "batch", 2: "samples"},
    "aug": {0: "batch"}, "v": {0: "batch", 2: "samples"},
}


def input_names(stage: str) -> list[str]:
    """The graph inputs of a stage, in the order of its forward()."""
    if stage in TEXT_STAGES:
        return list(GENERATOR_INPUTS)
    if stage == "spectral":
        return list(SPECTRAL_INPUTS)
    if stage in AUDIO_CASCADERS:
        return list(CASCADER_INPUTS)
    if stage == "vocoder":
        return list(VOCODER_INPUTS)
    raise ValueError(f"unknown stage {stage!r}")


# ----------------------------------------------------------------------------- translations


def _translation_table() -> dict:
    """Custom translations for the fused export (see the module docstring)."""
    from onnxscript import ir
    from onnxscript import opset23 as op

    def group_norm(input, num_groups: int, weight=None, bias=None, eps: float = 1e-5,
                   cudnn_enabled: bool = True):
        shape = op.Shape(input)
        x = op.Reshape(input, op.Constant(value_ints=[0, num_groups, -1]))
        groups = op.Constant(value_ints=[num_groups])
        one = op.CastLike(op.ConstantOfShape(groups, value=ir.tensor([1.0], dtype=ir.DataType.FLOAT)), input)
        zero = op.CastLike(op.ConstantOfShape(groups, value=ir.tensor([0.0], dtype=ir.DataType.FLOAT)), input)
        x = op.Reshape(op.InstanceNormalization(x, one, zero, epsilon=eps), shape)
        rank = len(input.shape)
        axes = op.Constant(value_ints=list(range(1, rank - 1)))
        if weight is not None:
            x = op.Mul(x, op.Unsqueeze(weight, axes))
        if bias is not None:
            x = op.Add(x, op.Unsqueeze(bias, axes))
        return x

    def sdpa(query, key, value, attn_mask=None, dropout_p: float = 0.0, is_causal: bool = False,
             scale: float | None = None, enable_gqa: bool = False):
        if attn_mask is not None:
            target = op.Concat(op.Shape(attn_mask, start=0, end=-2), op.Shape(query, start=-2, end=-1),
                               op.Shape(key, start=-2, end=-1), axis=0)
            attn_mask = op.Expand(attn_mask, target)
        y, _, _, _ = op.Attention(query, key, value, attn_mask, scale=scale, is_causal=is_causal)
        return y

    aten = torch.ops.aten
    return {aten.group_norm.default: group_norm, aten.scaled_dot_product_attention.default: sdpa}


# ----------------------------------------------------------------------------- export


def example_inputs(stage: str, cfg, batch: int = 2, frames: int | None = None, tokens: int = 16,
                   seed: int = 0) -> dict[str, torch.Tensor]:
    """Random inputs of the right shapes and dtypes for a stage (export tracing and parity)."""
    g = torch.Generator().manual_seed(seed)
    if stage == "spectral":
        base = example_inputs("generator", cfg, batch, frames, tokens, seed)
        f = base["grid"].shape[-1]
        return {**base, "x": torch.randn(batch, cfg.out_channels, f, generator=g),
                "cond": torch.randn(batch, cfg.in_channels - cfg.out_channels, f, generator=g)}
    if stage in TEXT_STAGES:
        m = cfg.frame_multiple
        f = frames if frames is not None else 4 * m
        mask = torch.ones(batch, tokens)
        for i in range(batch):
            mask[i, max(2, tokens - 3 * i - 1):] = 0.0  # varied padding
        return {
            "x": torch.randn(batch, cfg.in_channels, f * cfg.hop, generator=g),
            "t": torch.rand(batch, generator=g),
            "text": torch.randn(batch, tokens, cfg.text_dim, generator=g) * mask[:, :, None],
            "text_mask": mask,
            "bpm": torch.tensor([[0.0, 92.0, 141.5][i % 3] for i in range(batch)]),
            "key": torch.randint(0, 13, (batch,), generator=g),
            "mode": torch.randint(0, 5, (batch,), generator=g),
            "meter": torch.randint(0, 4, (batch,), generator=g),
            "grid": torch.randn(batch, cfg.grid_channels, f, generator=g),
        }
    f = frames if frames is not None else 8
    if stage in AUDIO_CASCADERS:
        return {
            "x": torch.randn(batch, 1, f * cfg.hop, generator=g),
            "t": torch.rand(batch, generator=g),
            "cond": torch.randn(batch, 1, f * cfg.hop, generator=g),
            "aug": torch.rand(batch, generator=g) * 0.5,
        }
    return {
        "x": torch.randn(batch, 1, f * cfg.hop, generator=g),
        "t": torch.rand(batch, generator=g),
        "mel": torch.randn(batch, cfg.n_mels, f, generator=g),
    }


def _dynamic_shapes(stage: str, cfg) -> dict:
    from torch.export import Dim

    batch = Dim("batch", min=1, max=1024)
    if stage == "spectral":
        d = _dynamic_shapes("generator", cfg)
        return {**d, "cond": d["grid"]}
    if stage in TEXT_STAGES:
        q = Dim("frames_q", min=1, max=1 << 16)
        frames = cfg.frame_multiple * q if cfg.frame_multiple > 1 else q
        tokens = Dim("tokens", min=1, max=512)
        return {
            "x": {0: batch, 2: cfg.hop * frames if cfg.hop > 1 else frames}, "t": {0: batch},
            "text": {0: batch, 1: tokens},
            "text_mask": {0: batch, 1: tokens}, "bpm": {0: batch}, "key": {0: batch},
            "mode": {0: batch}, "meter": {0: batch}, "grid": {0: batch, 2: frames},
        }
    frames = Dim("frames", min=1, max=1 << 16)
    if stage in AUDIO_CASCADERS:
        return {"x": {0: batch, 2: cfg.hop * frames}, "t": {0: batch}, "cond": {0: batch, 2: cfg.hop * frames},
                "aug": {0: batch}}
    return {"x": {0: batch, 2: cfg.hop * frames}, "t": {0: batch}, "mel": {0: batch, 2: frames}}


def _rename_axes(model: onnx.ModelProto, stage: str) -> None:
    axes = _AXES[stage]
    for vi in list(model.graph.input) + list(model.graph.output):
        for ax, name in axes.get(vi.name, {}).items():
            dim = vi.type.tensor_type.shape.dim[ax]
            dim.Clear()
            dim.dim_param = name


def strip_node_metadata(proto: onnx.ModelProto) -> int:
    """Drop the exporter's per-node metadata (stack traces with the exporting machine's paths, FX
    node names, name scopes) and doc strings; the graph computes the same. Returns nodes cleared."""
    graphs = [proto.graph, *(f for f in proto.functions)]
    cleared = 0
    while graphs:
        g = graphs.pop()
        for node in g.node:
            if len(node.metadata_props) or node.doc_string:
                del node.metadata_props[:]
                node.doc_string = ""
                cleared += 1
            graphs += [a.g for a in node.attribute if a.type == onnx.AttributeProto.GRAPH]
    return cleared


def stage_name(model: torch.nn.Module) -> str:
    """The stage a UNet1d / Vocoder1d is: generator, wavegen, vocoder, cascader or superres."""
    stage = getattr(getattr(model, "cfg", None), "stage", None)
    if stage is None:
        return "generator" if type(model).__name__ == "UNet1d" else "vocoder"
    return stage


def export_stage(model: torch.nn.Module, out_path: str | Path, fused: bool = True) -> Path:
    """Export a UNet1d/Vocoder1d (eval mode) to `out_path` (one self-contained .onnx file)."""
    out_path = Path(out_path)
    stage = stage_name(model)
    cfg = model.cfg
    inputs = example_inputs(stage, cfg)
    names = input_names(stage)
    shapes = _dynamic_shapes(stage, cfg)
    model = model.eval()
    kwargs = {}
    if fused:
        kwargs["custom_translation_table"] = _translation_table()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        prog = torch.onnx.export(
            model, tuple(inputs[n] for n in names), dynamo=True,
            opset_version=OPSET_FUSED if fused else OPSET_UNFUSED,
            input_names=names, output_names=[OUTPUT],
            # positional (an audio cascader's "cond" binds to forward's third parameter)
            dynamic_shapes=tuple(shapes[n] for n in names) if stage in AUDIO_CASCADERS else shapes,
            optimize=True, verbose=False, **kwargs,
        )
    proto = prog.model_proto
    _rename_axes(proto, stage)
    strip_node_metadata(proto)
    proto.producer_name = "n2m-exporter"
    onnx.checker.check_model(proto)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(out_path))
    return out_path


# ----------------------------------------------------------------------------- inspection


def op_counts(path: str | Path) -> dict[str, int]:
    model = onnx.load(str(path), load_external_data=False)
    return dict(Counter(n.op_type for n in model.graph.node))


def attention_blocks(model: torch.nn.Module) -> int:
    """Number of SDPA calls per forward: one per SelfAttention / CrossAttention module."""
    return sum(1 for m in model.modules() if type(m).__name__ in {"SelfAttention", "CrossAttention"})


def check_fused(path: str | Path, expected_attention: int) -> dict[str, int]:
    """Raise ValueError unless the graph has exactly one fused attention node per attention block,
    no Softmax (no leftover unfused attention) and no GroupNormalization."""
    counts = op_counts(path)
    fused = sum(counts.get(op, 0) for op in FUSED_ATTENTION_OPS)
    problems = []
    if fused != expected_attention:
        problems.append(f"{fused} fused attention nodes, expected {expected_attention}")
    if counts.get("Softmax", 0):
        problems.append(f"{counts['Softmax']} Softmax nodes (unfused attention)")
    if counts.get("GroupNormalization", 0):
        problems.append("GroupNormalization present (no ORT CPU kernel)")
    if problems:
        raise ValueError(f"{path}: " + "; ".join(problems))
    return counts


# ----------------------------------------------------------------------------- variants


def _untie_resize_inputs(model: onnx.ModelProto) -> None:
    """Give every Resize its own copy of shared initializers (ORT's fp16 converter otherwise
    emits duplicate Cast node names)."""
    inits = {i.name: i for i in model.graph.initializer}
    seen: set[str] = set()
    for node in model.graph.node:
        if node.op_type != "Resize":
            continue
        for j, name in enumerate(node.input):
            if name in inits:
                if name in seen:
                    copy = onnx.TensorProto()
                    copy.CopyFrom(inits[name])
                    copy.name = f"{name}__{node.name or id(node)}_{j}"
                    model.graph.initializer.append(copy)
                    node.input[j] = copy.name
                else:
                    seen.add(name)


def to_fp16(src: str | Path, dst: str | Path) -> Path:
    """fp16 weights and compute with fp32 inputs/outputs (the engine feeds fp32 everywhere)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(src))
    _untie_resize_inputs(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        half = convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=False)
    onnx.save(half, str(dst))
    return Path(dst)


def to_int8(src: str | Path, dst: str | Path) -> Path:
    """Dynamic int8 quantisation of MatMul/Gemm weights only (quantising Conv is slower on CPU)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # The exporter's value_info disagrees with onnx's own shape inference of 4-D Attention
    # (the quantiser re-infers shapes and fails); drop it, it is only a hint.
    model = onnx.load(str(src))
    del model.graph.value_info[:]
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "plain.onnx"
        onnx.save(model, str(plain))
        logger = logging.getLogger()
        level = logger.level
        logger.setLevel(logging.ERROR)  # the quantiser logs a pre-processing hint on root
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                quantize_dynamic(str(plain), str(dst), op_types_to_quantize=["MatMul", "Gemm"],
                                 weight_type=QuantType.QInt8)
        finally:
            logger.setLevel(level)
    return Path(dst)


# ----------------------------------------------------------------------------- parity


@dataclass
class Parity:
    max_abs: float
    rel_l2: float


def ort_session(path: str | Path, threads: int | None = None, optimize: bool = True):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads or min(2, os.cpu_count() or 1)
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    if not optimize:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def parity(model: torch.nn.Module, path_or_session, batch: int, frames: int, tokens: int = 16,
           seed: int = 1) -> Parity:
    """ORT vs torch fp32 on random inputs of one shape."""
    stage = stage_name(model)
    sess = ort_session(path_or_session) if isinstance(path_or_session, str | Path) else path_or_session
    inputs = example_inputs(stage, model.cfg, batch=batch, frames=frames, tokens=tokens, seed=seed)
    with torch.no_grad():
        ref = model(**inputs).numpy()
    got = sess.run(None, {k: v.numpy() for k, v in inputs.items()})[0]
    diff = got.astype(np.float64) - ref
    return Parity(float(np.abs(diff).max()),
                  float(np.linalg.norm(diff) / max(np.linalg.norm(ref), 1e-12)))


def randomize_(model: torch.nn.Module, seed: int, std: float = 0.2) -> torch.nn.Module:
    """Give every zero-initialised parameter (output convs, attention projections) random values,
    so that an untrained model's output depends on every path (tests, benchmarks)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.numel() and not p.abs().sum():
                fan_in = p[0].numel() if p.ndim > 1 else p.numel()
                p.copy_(torch.randn(p.shape, generator=g) * std / max(1.0, fan_in) ** 0.5)
    return model
