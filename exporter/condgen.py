"""The spectral stage's conditioning remade by its generator (training config `cond_generator`):
a frozen generator checkpoint turns a noised crop of the render's COARSE into the kind of COARSE
the cascader is given at run time."""

from __future__ import annotations

from pathlib import Path

import torch

from n2m.bridge.features import COARSE
from n2m.bridge.schedule import Schedule
from n2m.exporter.models.unet import build_model, config_from_dict
from n2m.exporter.trainconfig import ConfigError, TrainConfig


def load_cond_generator(trainer) -> torch.nn.Module | None:
    """The frozen generator (EMA weights of the checkpoint the config names; None when it names
    none) whose samples stand in for the spectral stage's COARSE conditioning, checked against it."""
    path, c, cfg = trainer.cfg.cond_generator, trainer.stage_cfg, trainer.cfg
    if not path:
        return None
    src = Path(path)
    if not src.is_file():
        raise ConfigError(f"cond_generator {path}: no such checkpoint (a generator's last.pt; "
                          f"`n2m train CONFIG --init MODEL --steps 0` makes one from an exported model)")
    ckpt = torch.load(src, map_location="cpu", weights_only=False)
    gcfg = config_from_dict(ckpt.get("config") or {}) if ckpt.get("stage") == "generator" else None
    cond_ch = c.in_channels - c.out_channels
    if gcfg is None or gcfg.representation != "coarse" or gcfg.out_channels != cond_ch:
        raise ConfigError(f"cond_generator {path} is not a COARSE generator with {cond_ch} channels")
    if (gcfg.mel_mean, gcfg.mel_scale) != (c.mel_mean, c.mel_scale):
        raise ConfigError(f"cond_generator {path} normalises the mel as ({gcfg.mel_mean}, {gcfg.mel_scale}), "
                          f"this stage as ({c.mel_mean}, {c.mel_scale})")
    if Schedule.from_dict(ckpt.get("schedule") or {}) != trainer.schedule:
        raise ConfigError(f"cond_generator {path} was trained with another noise schedule")
    half = cfg.crop_frames // COARSE.pool
    if cfg.crop_frames % COARSE.pool or half % gcfg.frame_multiple:
        raise ConfigError(f"crop_frames {cfg.crop_frames} / {COARSE.pool} must be a multiple of the "
                          f"cond_generator's {gcfg.frame_multiple} frames")
    gen = build_model(gcfg)
    gen.load_state_dict(ckpt.get("ema") or ckpt["model"])
    gen.eval()
    for q in gen.parameters():
        q.requires_grad_(False)
    return gen


def remade_cond(trainer, cond: torch.Tensor, batch: dict, text: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """cond, or with the config's probability what the trainer's cond generator makes of it."""
    cfg = trainer.cfg
    if trainer.cond_gen is None or trainer.rng.random() >= cfg.cond_generator_prob:
        return cond
    return generated_cond(trainer.cond_gen, cfg, trainer.schedule, trainer.text, cond, batch, text, mask)


@torch.no_grad()
def generated_cond(gen: torch.nn.Module, cfg: TrainConfig, sch: Schedule, text_cache, cond: torch.Tensor,
                   batch: dict, text: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """cond [B, C, F] (COARSE repeated to 100 frames/s) as the cond generator remakes it: each
    crop noised to a time in cond_generator_t, then DDIM steps to 0 with guidance; returned at
    100 frames/s."""
    b, _, n = cond.shape
    x = cond[:, :, :: COARSE.pool]
    grid = batch["grid"][:, :, :: COARSE.pool]
    ctl = (batch["bpm"], batch["key"], batch["mode"], batch["meter"])
    # "" padded to the captions' length, as the engine batches it (the model needs >= 4 tokens)
    u_text, u_mask = torch.zeros_like(text), torch.zeros_like(mask)
    e = torch.from_numpy(text_cache.get(""))[: text.shape[1]]
    u_text[:, : e.shape[0]], u_mask[:, : e.shape[0]] = e, 1.0
    zeros = [torch.zeros_like(v) for v in ctl]
    lo, hi = cfg.cond_generator_t
    t0 = lo + (hi - lo) * torch.rand(b)
    z = sch.add_noise(x, torch.randn_like(x), t0)
    k = cfg.cond_generator_steps
    g = cfg.cond_generator_guidance
    x0 = x
    for i in range(k):
        t = t0 * (1.0 - i / k)
        t_next = t0 * (1.0 - (i + 1) / k)
        v = gen(z, t, text, mask, *ctl, grid)
        if g != 1.0:
            vu = gen(z, t, u_text, u_mask, *zeros, torch.zeros_like(grid))
            v = vu + g * (v - vu)
        a, s_ = (q[:, None, None] for q in sch.alpha_sigma(t))
        x0 = a * z - s_ * v
        eps = s_ * z + a * v
        an, sn = (q[:, None, None] for q in sch.alpha_sigma(t_next))
        z = an * x0 + sn * eps
    return torch.repeat_interleave(x0, COARSE.pool, dim=2)[:, :, :n]
