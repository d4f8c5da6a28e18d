"""exporter.onnx_layout: 1-D convolutions rewritten as 2-D ones compute the same thing, and ORT's
NCHWc transformer then takes them (which one is faster is for `n2m bench` to say)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from n2m.exporter.export.onnx_layout import conv1d_as_conv2d


def _session(model_or_path, optimized: Path | None = None) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    if optimized is not None:
        so.optimized_model_filepath = str(optimized)
    src = model_or_path.SerializeToString() if isinstance(model_or_path, onnx.ModelProto) else str(model_or_path)
    return ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])


def _feeds(sess: ort.InferenceSession, frames: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for i in sess.get_inputs():
        if i.name == "x":
            ch = i.shape[1]
            out["x"] = rng.standard_normal((2, ch, frames * (320 if ch == 1 else 1))).astype(np.float32)
        elif i.name == "t":
            out["t"] = rng.random(2).astype(np.float32)
        elif i.name == "mel":
            out["mel"] = rng.standard_normal((2, 80, frames)).astype(np.float32)
        elif i.name == "text":
            out["text"] = rng.standard_normal((2, 16, i.shape[2])).astype(np.float32)
        elif i.name == "text_mask":
            out["text_mask"] = np.ones((2, 16), np.float32)
        elif i.name == "bpm":
            out["bpm"] = np.array([0.0, 120.0], np.float32)
        elif i.name in ("key", "mode", "meter"):
            out[i.name] = np.array([0, 1], np.int64)
        elif i.name == "grid":
            out["grid"] = rng.standard_normal((2, i.shape[1], frames)).astype(np.float32)
    return out


@pytest.mark.parametrize("stage", ["generator", "vocoder"])
def test_conv2d_layout_matches_and_is_blocked(stage, tiny_model_dir, tmp_path):
    src = onnx.load(str(tiny_model_dir / f"{stage}.onnx"))
    n_conv = sum(1 for n in src.graph.node if n.op_type == "Conv")
    rewritten, count = conv1d_as_conv2d(src)
    assert count == n_conv > 0
    # the rewrite is standard ONNX: every Conv now has a 4-D kernel, nothing ORT-specific saved
    ops = Counter(n.op_type for n in rewritten.graph.node)
    assert ops["Unsqueeze"] >= count and ops["Squeeze"] >= count
    assert all(n.domain in ("", "ai.onnx", "com.microsoft") for n in rewritten.graph.node)
    a, b = _session(src), _session(rewritten, optimized=tmp_path / "opt.onnx")
    for frames, seed in ((64, 0), (128, 1)):
        feeds = _feeds(a, frames, seed)
        ref, got = a.run(None, feeds)[0], b.run(None, feeds)[0]
        assert np.abs(ref - got).max() < 1e-4
    domains = Counter(n.domain for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node)
    assert domains["com.microsoft.nchwc"] > 0  # ORT took the 2-D convolutions into NCHWc


def test_source_graph_is_not_modified(tiny_model_dir):
    src = onnx.load(str(tiny_model_dir / "vocoder.onnx"))
    before = src.SerializeToString()
    conv1d_as_conv2d(src)
    assert src.SerializeToString() == before


def test_export_with_conv2d_layout_generates_the_same_clip(tiny_model_dir, tiny_checkpoints, tmp_path):
    from n2m.bridge.controls import Controls
    from n2m.bridge.engine import Engine, Request
    from n2m.bridge.manifest import Manifest
    from n2m.exporter.export import ExportOptions, export_cascade
    from n2m.exporter.export.warmstart import stage_state_dict

    gen, voc = tiny_checkpoints
    out = tmp_path / "m2d"
    opts = ExportOptions(steps=4, vocoder_steps=3, force=True, variants=("fp32", "fp16"), text_from=tiny_model_dir,
                         conv2d=("generator", "vocoder"))  # fp16 too: its conversion re-infers shapes
    export_cascade(gen, voc, out, opts, log=lambda m: None)
    man = Manifest.load(out)
    assert man.exporter["conv_layout"] == {"generator": "conv2d", "vocoder": "conv2d"}
    kernels = [len(i.dims) for i in onnx.load(str(out / "vocoder.onnx")).graph.initializer
               if i.name.endswith("conv1.weight")]
    assert kernels and set(kernels) == {4}
    assert (out / "generator.fp16.onnx").is_file() and (out / "vocoder.fp16.onnx").is_file()
    req = Request("warm rhodes loop, 90 bpm", Controls(bpm=90.0, seconds=2.0), seed=3)
    a = Engine.load(tiny_model_dir, provider="cpu", threads=1).generate(req)[0].audio
    b = Engine.load(out, provider="cpu", threads=1).generate(req)[0].audio
    assert a.shape == b.shape and np.abs(a - b).max() < 1e-3
    # a run can still warm-start from the 2-D graphs
    import torch

    ref = torch.load(voc, weights_only=False)["ema"]
    got = stage_state_dict(out, "vocoder")
    assert all(torch.equal(got[k], ref[k]) for k in ref)


def test_rewriting_a_rewritten_graph_changes_nothing(tiny_model_dir):
    """Tried: the layout rewrite applied to its own output (a model exported with --conv2d, then
    `n2m bench` building its conv2d comparison folder from it)."""
    once, n1 = conv1d_as_conv2d(onnx.load(str(tiny_model_dir / "vocoder.onnx")))
    twice, n2 = conv1d_as_conv2d(once)
    assert n1 > 0 and n2 == 0
    assert [n.op_type for n in twice.graph.node] == [n.op_type for n in once.graph.node]
