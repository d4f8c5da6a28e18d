"""Recover a stage's PyTorch weights from an exported cascade (`bridge/models/NAME`).

Training checkpoints live outside the repository and can be lost; the shipped ONNX graphs hold
the (EMA) weights the model was exported with. `stage_state_dict` maps every parameter of a freshly
built stage back from the graph's initializers and then *proves* the mapping: the torch model with
the recovered weights must match ONNX Runtime on random inputs (fp32, max abs error 1e-4), or it
raises. `n2m train CONFIG --init MODEL_DIR` uses it to warm-start a run (`init_state`, which
also takes a checkpoint, rebases an absolute-side spectral cascader for a relative-side run, and widens
a coarse generator for a run that adds side bands).

Most initializers keep their parameter names. The exporter rewrites a few: GroupNorm affine
weights become ``(C, 1)`` constants, linear weights that feed a MatMul are stored transposed, and a
learned vector may gain a leading axis. Those are matched in the order the graph uses them (the
order of the forward pass, which is the order the modules register them), each by shape; the
parity check catches any mismatch.
"""

from __future__ import annotations

import json
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import torch

from n2m.bridge.features import FINE
from n2m.exporter.models.unet import (
    STAGE_CONFIGS,
    UNetConfig,
    VocoderConfig,
    build_model,
    config_from_dict,
)


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


def _manifest_stage(model_dir: Path, stage: str) -> dict:
    man_path = model_dir / "manifest.json"
    if not man_path.is_file():
        raise WarmStartError(f"{man_path} not found: pass an exported model directory")
    st = (json.loads(man_path.read_text()).get("stages") or {}).get(stage)
    if not st or "fp32" not in st.get("files", {}):
        raise WarmStartError(f"{model_dir} has no fp32 {stage} graph")
    return st


def _rebases(src: UNetConfig | VocoderConfig, cfg: UNetConfig | VocoderConfig) -> bool:
    """Whether `src` warm-starts `cfg` by rebasing its side: equal but absolute -> relative."""
    return (isinstance(src, UNetConfig) and isinstance(cfg, UNetConfig) and src.side == "absolute"
            and cfg.side == "relative" and replace(src, side="relative") == cfg)


def rebase_side(state: dict[str, torch.Tensor], bins: int = FINE.n_mels) -> dict[str, torch.Tensor]:
    """An absolute-side spectral cascader's weights as the relative-side one computing the same
    function: f_new(z_mid, z_side - z_mid) = (v_mid, v_side - v_mid). The input's mid columns also
    take the side's (z_side = z_rel + z_mid); the output's side rows lose the mid's."""
    out = dict(state)
    w_in = state["conv_in.weight"].clone()  # [C, mid + side + COARSE + grid, k]
    w_in[:, :bins] += w_in[:, bins:2 * bins]
    w_out, b_out = state["conv_out.weight"].clone(), state["conv_out.bias"].clone()  # [mid + side, C, k]
    w_out[bins:2 * bins] -= w_out[:bins]
    b_out[bins:2 * bins] -= b_out[:bins]
    out.update({"conv_in.weight": w_in, "conv_out.weight": w_out, "conv_out.bias": b_out})
    return out


def _widens(src: UNetConfig | VocoderConfig, cfg: UNetConfig | VocoderConfig) -> bool:
    """Whether `src` warm-starts `cfg` by adding side-band rows: a coarse generator without them."""
    if not (isinstance(src, UNetConfig) and isinstance(cfg, UNetConfig)) or src.side_bands or not cfg.side_bands:
        return False
    rows = src.in_channels + cfg.side_bands
    return replace(src, side_bands=cfg.side_bands, in_channels=rows, out_channels=rows) == cfg


def _side_output(c: UNetConfig) -> tuple:
    return c.side_x0, c.side_mean, c.side_sd


def _reparams(src: UNetConfig | VocoderConfig, cfg: UNetConfig | VocoderConfig) -> bool:
    """Whether `cfg` is `src` with its side rows' output made their x0 estimate (`side_x0`), or
    preconditioned otherwise (`side_mean`, `side_sd`)."""
    return (isinstance(src, UNetConfig) and isinstance(cfg, UNetConfig) and cfg.side_x0
            and _side_output(src) != _side_output(cfg))


def _changes(src, cfg) -> tuple[bool, UNetConfig | VocoderConfig, bool, bool]:
    """(x0 rows, the config before them, rebased, widened): what turns `src` into `cfg`."""
    x0 = _reparams(src, cfg)
    want = replace(cfg, side_x0=src.side_x0, side_mean=src.side_mean, side_sd=src.side_sd) if x0 else cfg
    return x0, want, _rebases(src, want), _widens(src, want)


def x0_side_rows(state: dict[str, torch.Tensor], bins: int) -> dict[str, torch.Tensor]:
    """A side-band generator's weights for a new side output: the side output rows (after `bins`)
    start at zero (x0 at the data's mean, or preconditioned at its linear estimate from z), since
    weights trained for another output mean nothing in this one."""
    out = dict(state)
    out["conv_out.weight"] = state["conv_out.weight"].clone()
    out["conv_out.bias"] = state["conv_out.bias"].clone()
    out["conv_out.weight"][bins:] = 0.0
    out["conv_out.bias"][bins:] = 0.0
    return out


def widen_side_bands(state: dict[str, torch.Tensor], bins: int, bands: int) -> dict[str, torch.Tensor]:
    """A coarse generator's weights with `bands` side-band rows added after its `bins` mel rows: the
    new input columns and output rows start at zero, so the mel rows compute what they did."""
    out = dict(state)
    w_in = state["conv_in.weight"]  # [C, bins + grid, k]
    zeros_in = w_in.new_zeros(w_in.shape[0], bands, w_in.shape[2])
    out["conv_in.weight"] = torch.cat([w_in[:, :bins], zeros_in, w_in[:, bins:]], dim=1)
    w_out, b_out = state["conv_out.weight"], state["conv_out.bias"]  # [bins, C, k], [bins]
    out["conv_out.weight"] = torch.cat([w_out, w_out.new_zeros(bands, *w_out.shape[1:])])
    out["conv_out.bias"] = torch.cat([b_out, b_out.new_zeros(bands)])
    return out


def init_state(source: str | Path, stage: str, cfg: UNetConfig | VocoderConfig) -> dict[str, torch.Tensor]:
    """The weights a run of `cfg` starts from: a checkpoint's EMA weights, or an exported model
    directory's graph (`stage_state_dict`); rebased (`rebase_side`) when the source's side is
    absolute and `cfg`'s relative; widened (`widen_side_bands`) when `cfg` adds side bands; its side
    output rows zeroed (`x0_side_rows`) when `cfg` makes them an x0 estimate (`side_x0`) or
    preconditions them (`side_sd`).
    Raises WarmStartError naming what does not fit."""
    source = Path(source)
    if source.is_dir():
        src = _config(stage, _manifest_stage(source, stage)["config"])
        x0, want, rebase, widen = _changes(src, cfg)
        state = stage_state_dict(source, stage, build_model(src if rebase or widen or x0 else cfg))
    elif source.is_file():
        ckpt = torch.load(source, map_location="cpu", weights_only=False)
        if ckpt.get("stage") != stage:
            raise WarmStartError(f"{source} holds a {ckpt.get('stage')!r} stage, the config trains {stage!r}")
        src = config_from_dict(ckpt["config"])
        x0, want, rebase, widen = _changes(src, cfg)
        if src != want and not (rebase or widen):
            raise WarmStartError(f"{source} was trained with a different model config")
        state = ckpt.get("ema") or ckpt["model"]
    else:
        raise WarmStartError(f"--init {source}: no such checkpoint or model directory")
    if widen:
        state = widen_side_bands(state, src.out_channels, cfg.side_bands)
    elif rebase:
        state = rebase_side(state)
    return x0_side_rows(state, cfg.out_channels - cfg.side_bands) if x0 else state


def stage_state_dict(model_dir: str | Path, stage: str, model: torch.nn.Module | None = None,
                     check: bool = True) -> dict[str, torch.Tensor]:
    """The fp32 graph of `stage` in `model_dir` as a state_dict for `model` (built from the
    manifest's config when None). Raises WarmStartError when anything is left unmatched or the
    recovered model disagrees with ONNX Runtime."""
    import onnx
    from onnx import numpy_helper

    model_dir = Path(model_dir)
    st = _manifest_stage(model_dir, stage)
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
