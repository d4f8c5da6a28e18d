"""Checkpoints as a cascade: the manifest their export writes, and torch modules as stage callables.

    cascade = checkpoint_cascade({"generator": G, "vocoder": V}, RouteDefaults(steps=25))
    audio, info = cascade.run(plan)          # bridge.cascade, the runtime's own sampling code

`stage_spec` and `route_manifest` describe stages and routes for `n2m export` and for checkpoints
run in torch alike, so evaluation, training previews and benchmarks sample exactly as the exported
cascade does (bridge.cascade): only the networks differ.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from n2m.bridge.cascade import Cascade
from n2m.bridge.features import COARSE, FINE, MelSpec
from n2m.bridge.manifest import (
    GRIFFIN_LIM,
    OPTIONAL_STAGES,
    ROUTES,
    ControlsSpec,
    GuidanceSpec,
    Manifest,
    StageSpec,
    TextEncoderSpec,
)
from n2m.bridge.schedule import Schedule
from n2m.exporter.models.unet import build_model

TEXT_STAGES = ("generator", "wavegen")  # the stages conditioned on text (as exporter.onnx_unet)
AUDIO_CASCADERS = ("cascader", "superres")
TEXT_DIM = 384


@dataclass
class RouteDefaults:
    """Default steps, samplers and guidance a route is described (and exported) with."""

    steps: int = 25
    sampler: str = "dpmpp_2m"
    vocoder_steps: int = 12  # the route's cascader to 16 kHz (vocoder or wave cascader)
    vocoder_sampler: str = "dpmpp_2m"
    superres_steps: int = 8
    superres_sampler: str = "dpmpp_2m"
    cond_aug: float = 0.1  # run-time noise augmentation of audio cascaders' conditioning (<= aug_max)
    guidance: GuidanceSpec = field(default_factory=GuidanceSpec)
    default_seconds: float = 10.0
    decoder: str = "vocoder"  # the mel route's default decoder ("vocoder" | "griffin-lim")
    mel_max: float | None = None


def load_checkpoint(path: str | Path, use_ema: bool = True) -> tuple[torch.nn.Module, dict]:
    """(model in eval mode, checkpoint dict) from a training checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(ckpt, dict) or "config" not in ckpt or "model" not in ckpt:
        raise ValueError(f"{path} is not an n2m training checkpoint (no 'config'/'model')")
    model = build_model(ckpt["config"])
    state = ckpt.get("ema") if use_ema and ckpt.get("ema") else ckpt["model"]
    model.load_state_dict(state)
    model.eval()
    return model, ckpt


class TorchStage:
    """A torch module as a cascade stage: v = stage(x, t, **cond) on numpy arrays."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model

    @torch.no_grad()
    def __call__(self, x: np.ndarray, t: np.ndarray, **cond: np.ndarray) -> np.ndarray:
        kw = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in cond.items()}
        return self.model(torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(t), **kw).numpy()


def stage_spec(name: str, model: torch.nn.Module, ckpt: dict, opts: RouteDefaults, inputs: list[str],
               output: str, files: dict[str, str] | None = None, **measured: Any) -> StageSpec:
    """The manifest entry of one stage (files, parity and step cost are the export's to add)."""
    cfg = model.cfg
    if name == "spectral":
        return _spectral_spec(model, ckpt, opts, inputs, output, files, **measured)
    is_gen, text, audio_cond = name == "generator", name in TEXT_STAGES, name in AUDIO_CASCADERS
    mel = MelSpec(**ckpt.get("mel", MelSpec().to_dict()))
    coarse = getattr(cfg, "representation", "mel") == "coarse"  # the fine route's generator: 50 frames/s
    rate = (COARSE.frame_rate if coarse else mel.frame_rate) if is_gen \
        else float(mel.sample_rate) if name == "vocoder" else float(cfg.sample_rate)
    sampler, steps = {"generator": (opts.sampler, opts.steps), "wavegen": (opts.sampler, opts.steps),
                      "superres": (opts.superres_sampler, opts.superres_steps)}.get(
                          name, (opts.vocoder_sampler, opts.vocoder_steps))
    return StageSpec(
        name=name, role="generator" if text else "cascader", files=files or {}, inputs=inputs, output=output,
        output_kind="log_mel_normalised" if is_gen else "audio",
        channels=cfg.out_channels if is_gen else 1, rate=rate,
        frame_multiple=cfg.frame_multiple if text else 1,
        schedule=Schedule.from_dict(ckpt.get("schedule", Schedule().to_dict())).to_dict(),
        default_sampler=sampler, default_steps=steps, guidance=opts.guidance if text else None,
        audio_scale=1.0 if is_gen else float(cfg.audio_scale),
        params=int(sum(p.numel() for p in model.parameters())), config=asdict(cfg),
        mel_norm=dict(ckpt.get("mel_norm", cfg.mel_norm)),
        cond_rate=float(cfg.cond_rate) if audio_cond else 0.0,
        cond_aug=min(float(opts.cond_aug), float(cfg.aug_max)) if audio_cond else 0.0, **measured)


def _spectral_spec(model: torch.nn.Module, ckpt: dict, opts: RouteDefaults, inputs: list[str], output: str,
                   files: dict[str, str] | None, **measured: Any) -> StageSpec:
    """The fine route's cascader: FINE mid + side mel (normalised) at 100 frames/s from the COARSE
    mel, conditioned on the prompt without guidance; the route's cascader steps and sampler."""
    cfg = model.cfg
    return StageSpec(
        name="spectral", role="cascader", files=files or {}, inputs=inputs, output=output,
        output_kind="fine_mel_normalised", channels=cfg.out_channels, rate=FINE.frame_rate,
        frame_multiple=cfg.frame_multiple, schedule=Schedule.from_dict(ckpt.get("schedule", Schedule().to_dict())).to_dict(),
        default_sampler=opts.vocoder_sampler, default_steps=opts.vocoder_steps, guidance=None,
        params=int(sum(p.numel() for p in model.parameters())), config=asdict(cfg),
        mel_norm=dict(ckpt.get("mel_norm", cfg.mel_norm)), cond_aug=min(float(opts.cond_aug), float(cfg.cond_aug_max)),
        **measured)


def route_manifest(route: str, names: list[str], loaded: dict[str, tuple[torch.nn.Module, dict]],
                   stages: dict[str, StageSpec], opts: RouteDefaults, text_encoder: TextEncoderSpec,
                   **extra: Any) -> Manifest:
    """The manifest of a route's stages; `extra` holds what only an export knows (files, ids)."""
    gen_model, gen_ckpt = loaded[ROUTES[route][0]]
    cas_model = loaded[ROUTES[route][1]][0]
    if route == "fine":
        return _fine_manifest(gen_model, gen_ckpt, stages, opts, text_encoder, **extra)
    mel = MelSpec(**gen_ckpt.get("mel", MelSpec().to_dict()))
    sample_rate = int(round(stages[names[-1]].rate)) if route == "wave" or "superres" in stages else mel.sample_rate
    hop = int(round(sample_rate / mel.frame_rate))
    if route == "mel" and "superres" not in stages:
        hop = int(cas_model.cfg.hop)
    fields = dict(
        model_id="torch", name="torch", sample_rate=sample_rate, hop=hop, channels=1,
        frame_rate=mel.frame_rate, mel=mel.to_dict(), mel_norm=dict(gen_ckpt.get("mel_norm", gen_model.cfg.mel_norm)),
        text_encoder=text_encoder, stages=stages, controls=ControlsSpec(), files={},
        corpus_id=str(gen_ckpt.get("corpus_id", "unknown")), default_seconds=opts.default_seconds,
        default_decoder=opts.decoder if route == "mel" else ROUTES[route][1],
        mel_max=opts.mel_max if route == "mel" else None, route=route)
    return Manifest(**{**fields, **extra})


def _fine_manifest(gen_model: torch.nn.Module, gen_ckpt: dict, stages: dict[str, StageSpec], opts: RouteDefaults,
                   text_encoder: TextEncoderSpec, **extra: Any) -> Manifest:
    """The fine route: COARSE generator at 50 frames/s, spectral cascader, Griffin-Lim on FINE, stereo."""
    rate = COARSE.frame_rate
    fields = dict(
        model_id="torch", name="torch", sample_rate=FINE.sample_rate, hop=int(round(FINE.sample_rate / rate)),
        channels=2, frame_rate=rate, mel=FINE.to_dict(),
        coarse=replace(COARSE, side_bands=int(getattr(gen_model.cfg, "side_bands", 0))).to_dict(),
        mel_norm=dict(gen_ckpt.get("mel_norm", gen_model.cfg.mel_norm)), text_encoder=text_encoder, stages=stages,
        controls=ControlsSpec(), files={}, corpus_id=str(gen_ckpt.get("corpus_id", "unknown")),
        default_seconds=opts.default_seconds, default_decoder=GRIFFIN_LIM, mel_max=opts.mel_max, route="fine")
    return Manifest(**{**fields, **extra})


def checkpoint_cascade(checkpoints: dict[str, str | Path], opts: RouteDefaults | None = None,
                       threads: int = 1, text: Any = None) -> Cascade:
    """A bridge Cascade whose stages are the checkpoints' torch modules (EMA weights); `text`
    encodes prompts (prompts -> (states, mask)); by default MiniLM through a TextCache."""
    from n2m.exporter.export import onnx_unet, route_of
    from n2m.exporter.textenc import TextCache

    opts = opts or RouteDefaults()
    route = route_of(checkpoints)
    names = [*ROUTES[route], *(n for n in OPTIONAL_STAGES if n in checkpoints)]
    loaded = {n: load_checkpoint(checkpoints[n]) for n in names}
    for n, (_, ck) in loaded.items():
        if ck.get("stage", n) != n:
            raise ValueError(f"{checkpoints[n]} is a {ck.get('stage')} checkpoint, expected the {n}")
    stages = {n: stage_spec(n, m, ck, opts, onnx_unet.input_names(n), onnx_unet.OUTPUT)
              for n, (m, ck) in loaded.items()}
    max_tokens = int(loaded[names[0]][1].get("text_max_tokens", 40))
    te = TextEncoderSpec(name="minilm (torch)", files={}, tokenizer="", max_tokens=max_tokens, hidden=TEXT_DIM)
    manifest = route_manifest(route, names, loaded, stages, opts, te)
    if text is None:
        cache = TextCache(max_tokens=max_tokens)

        def text(prompts: list[str]) -> tuple[np.ndarray, np.ndarray]:
            states, mask = cache.batch(prompts)
            return states.numpy(), mask.numpy()

    return Cascade(manifest, text, {n: TorchStage(m) for n, (m, _) in loaded.items()}, threads=threads)
