"""Recover a stage's PyTorch weights from an exported cascade (`bridge/models/NAME`).

Training checkpoints live outside the repository and can be lost; the shipped ONNX graphs hold
the (EMA) weights the model was exported with. `stage_state_dict` maps every parameter of a freshly
built stage back from the graph's initializers and then *proves* the mapping: the torch model with
the recovered weights must match ONNX Runtime on random inputs (fp32, max abs error 1e-4), or it
raises. `n2m train CONFIG --init MODEL_DIR` uses it to warm-start a run.

Most initializers keep their parameter names. The exporter rewrites a few: GroupNorm affine
weights become ``(C, 1)`` constants, linear weights that feed a MatMul are stored transposed, and a
learned vector may gain a leading axis. Those are matched in the order the graph uses them (the
order of the forward pass, which is the order the modules register them), each by shape; the
parity check catches any mismatch.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch

from n2m.exporter.models.unet import STAGE_CONFIGS, UNetConfig, VocoderConfig, build_model


class WarmStartError(Exception):
    """The exported stage cannot be turned back into this model's weights."""


def _config(stage: str, cfg: dict) -> UNetConfig | VocoderConfig:
    cls = STAGE_CONFIGS.get(stage, VocoderConfig)
    names = {f.name for f in fields(cls)}
    kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in cfg.items() if k in names}
    return cls(**kw)


def _fit(want: tuple[int, ...], arr: np.ndarray, is_norm: bool) -> np.ndarray | None:
    """`arr` reshaped/transposed to `want` if it is one of the exporter's rewrites, else None."""
    if len(want) == 2 and arr.ndim == 2 and arr.shape == (want[1], want[0]):
        return arr.T  # a renamed linear weight is the transpose a MatMul reads (square ones too)
    if arr.shape == want:
        return arr
    # GroupNorm's affine weights become (C, 1); a learned vector gains a leading axis (1, C)
    if len(want) == 1 and arr.ndim == 2 and arr.shape == ((want[0], 1) if is_norm else (1, want[0])):
        return arr.reshape(want)
    return None


def stage_state_dict(model_dir: str | Path, stage: str, model: torch.nn.Module | None = None,
                     check: bool = True) -> dict[str, torch.Tensor]:
    """The fp32 graph of `stage` in `model_dir` as a state_dict for `model` (built from the
    manifest's config when None). Raises WarmStartError when anything is left unmatched or the
    recovered model disagrees with ONNX Runtime."""
    import onnx
    from onnx import numpy_helper

    model_dir = Path(model_dir)
    man_path = model_dir / "manifest.json"
    if not man_path.is_file():
        raise WarmStartError(f"{man_path} not found: pass an exported model directory")
    man = json.loads(man_path.read_text())
    st = (man.get("stages") or {}).get(stage)
    if not st or "fp32" not in st.get("files", {}):
        raise WarmStartError(f"{model_dir} has no fp32 {stage} graph")
    cfg = _config(stage, st["config"])
    if model is None:
        model = build_model(cfg)
    elif getattr(model, "cfg", None) is not None and model.cfg != cfg:
        raise WarmStartError(f"{model_dir}'s {stage} was exported with a different model config "
                             f"({st['config']}); train with that config to warm-start from it")
    graph_path = model_dir / st["files"]["fp32"]
    g = onnx.load(str(graph_path))
    inits = {i.name: numpy_helper.to_array(i) for i in g.graph.initializer}
    # every use of an initializer, in node order (repeats kept: the exporter shares one constant
    # between parameters that hold equal values, e.g. untrained GroupNorm weights)
    uses = [name for node in g.graph.node for name in node.input if name in inits]

    want = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    for name, ref in want.items():
        arr = inits.get(name)
        if arr is None:
            continue
        shape = tuple(ref.shape)
        if arr.shape == shape:
            out[name] = torch.from_numpy(np.array(arr))
        elif len(shape) == 3 and arr.shape == (shape[0], shape[1], 1, shape[2]):  # saved as 2-D
            out[name] = torch.from_numpy(np.array(arr.reshape(shape)))
    pending = [n for n in uses if n not in want]
    i = 0
    for name, ref in want.items():
        if name in out:
            continue
        while i < len(pending):
            cand = pending[i]
            i += 1
            arr = _fit(tuple(ref.shape), inits[cand], ".norm" in name or name.startswith("norm"))
            if arr is not None:
                out[name] = torch.from_numpy(np.array(arr)).to(ref.dtype)
                break
        else:
            raise WarmStartError(f"{graph_path}: no initializer left for {name} {tuple(ref.shape)}")
    if check:
        model.load_state_dict(out)
        err = _parity(model.eval(), graph_path, stage)
        if not err < 1e-4:
            raise WarmStartError(f"{graph_path}: recovered weights disagree with the graph "
                                 f"(max abs error {err:.3g}); the exporter's naming has changed")
    return out


def _parity(model: torch.nn.Module, path: Path, stage: str) -> float:
    from n2m.exporter.export.onnx_unet import parity

    worst = 0.0
    for batch, frames in ((1, 128), (2, 256)):
        worst = max(worst, parity(model, path, batch=batch, frames=frames, tokens=16).max_abs)
    return worst
