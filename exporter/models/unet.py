"""1D Efficient U-Nets of the cascade: the text-to-log-mel generator and the log-mel-to-audio vocoder.

Both are built from the same blocks (ResBlocks of GroupNorm + SiLU + Conv1d with the timestep and
pooled conditioning applied as FiLM scale/shift; self- and cross-attention through
`F.scaled_dot_product_attention`; strided-conv downsampling; nearest + conv upsampling), so that
`torch.onnx.export` translates every op and the exporter can swap GroupNorm's ONNX translation and
fuse attention.

Generator: ``UNet1d.forward(x, t, text, text_mask, bpm, key, mode, meter, grid) -> v``

    x          [B, 80, F] float32  normalised noisy log-mel (see ``mel_norm`` below)
    t          [B]        float32  diffusion time in [0, 1] (1 = pure noise)
    text       [B, L, 384] float32 MiniLM token states (exporter.textenc)
    text_mask  [B, L]     float32  1 = token, 0 = padding
    bpm        [B]        float32  0 = unspecified
    key, mode, meter [B]  int64    0 = unspecified, else 1 + index in bridge.controls vocabularies
    grid       [B, 4, F]  float32  bridge.grid.beat_grid (zeros when bpm is unspecified)
    returns v  [B, 80, F] float32  v-prediction (bridge.schedule)

F must be a multiple of ``2 ** (len(channels) - 1)``.

Vocoder cascader: ``Vocoder1d.forward(x, t, mel) -> v`` with x [B, 1, N] noisy 16 kHz audio
(times ``audio_scale``), t [B], mel [B, 80, F] normalised clean log-mel, N = F * prod(strides)
(= F * 320, so the bottleneck runs at the mel frame rate). No attention.

Waveform route (Noise2Music's other configuration, the same two classes):

- ``UNetConfig(stage="wavegen", strides=(4, 4, 4), in_channels=1, out_channels=1, ...)``: the
  generator with strided levels producing 3.2 kHz audio; same inputs as above with x [B, 1, F * 64]
  (times ``audio_scale``) and the grid [B, 4, F] at the bottleneck rate (50 Hz). Attention (self +
  cross to the text and control tokens) belongs at the low-rate levels (``attn_levels``).
- ``VocoderConfig(stage="cascader", cond_rate=3200, sample_rate=16000)`` and
  ``VocoderConfig(stage="superres", cond_rate=16000, sample_rate=48000)``:
  ``Vocoder1d.forward(x, t, cond, aug) -> v`` with cond [B, 1, N] the lower-rate audio upsampled to
  the stage's rate (bridge.resample.upsample) times ``audio_scale``, noise-augmented to diffusion
  time ``aug`` [B] (training draws aug in [0, aug_max]; the runtime uses the manifest's
  ``cond_aug``). N = F * prod(strides), so every stage's bottleneck runs at 50 Hz.

Log-mel normalisation (fixed in the config, saved in checkpoints): ``norm = (log_mel - mel_mean) /
mel_scale``; the runtime undoes it with ``log_mel = norm * mel_scale + mel_mean``.

A generator's ``representation`` says what its channels are: ``"mel"`` the 80-bin 16 kHz log-mel
(``bridge.features.MelSpec()``), ``"coarse"`` the v2 COARSE mel (``bridge.features.COARSE``:
in/out channels = its bin count, also 50 frames/s).

Classifier-free guidance: the unconditional input is the MiniLM states of the empty prompt ""
(mask ones over its tokens) with bpm 0, key/mode/meter 0 and a zero grid.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from n2m.bridge.schedule import Schedule
from n2m.exporter.models.configs import (  # noqa: F401 - the stage configs are imported from here too
    AUDIO_CASCADERS,
    N_KEYS,
    N_METERS,
    N_MODES,
    REPRESENTATIONS,
    STAGE_CONFIGS,
    TEXT_DIM,
    TINY_CONFIGS,
    StageConfig,
    UNetConfig,
    VocoderConfig,
    config_from_dict,
    tiny_cascader_config,
    tiny_generator_config,
    tiny_superres_config,
    tiny_vocoder_config,
    tiny_wavegen_config,
)
from n2m.exporter.models.modules import Downsample, Level, Upsample, norm, timestep_embedding
from n2m.exporter.models.vocoder import Vocoder1d

_SCHEDULE = Schedule()  # the schedule every stage trains with (exporter.train): side_x0's alpha, sigma


class UNet1d(nn.Module):
    """Generator: text + controls (+ beat grid) -> v-prediction of the normalised log-mel."""

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        ch, e = cfg.channels, cfg.emb_dim
        self.time_mlp = nn.Sequential(nn.Linear(ch[0], e), nn.SiLU(), nn.Linear(e, e))
        # conditioning
        self.text_norm = nn.LayerNorm(cfg.text_dim)
        self.text_pool = nn.Linear(cfg.text_dim, e)
        self.text_ctx = nn.Linear(cfg.text_dim, cfg.ctx_dim)
        self.bpm_mlp = nn.Sequential(nn.Linear(32, e), nn.SiLU(), nn.Linear(e, e))
        self.bpm_unspecified = nn.Parameter(torch.zeros(e))
        self.key_emb = nn.Embedding(N_KEYS, e)
        self.mode_emb = nn.Embedding(N_MODES, e)
        self.meter_emb = nn.Embedding(N_METERS, e)
        self.ctrl_ctx = nn.Linear(e, cfg.ctx_dim)  # controls as 4 extra cross-attention tokens
        # U-Net
        strides = cfg.level_strides
        grid_in_input = 0 if cfg.wave else cfg.grid_channels
        self.conv_in = nn.Conv1d(cfg.in_channels + grid_in_input, ch[0], cfg.kernel_size,
                                 padding=cfg.kernel_size // 2)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        for i, c in enumerate(ch):
            self.down.append(Level(c, c, cfg.blocks_per_level, e, cfg.kernel_size, cfg.groups,
                                   cfg.dropout, i in cfg.attn_levels, cfg.head_dim, cfg.ctx_dim))
            if i < len(ch) - 1:
                self.downsample.append(Downsample(c, ch[i + 1], strides[i]))
        last = len(ch) - 1
        self.mid = Level(ch[-1], ch[-1], 1, e, cfg.kernel_size, cfg.groups, cfg.dropout,
                         last in cfg.attn_levels, cfg.head_dim, cfg.ctx_dim)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i in reversed(range(len(ch))):
            c = ch[i]
            self.up.append(Level(2 * c, c, cfg.blocks_per_level, e, cfg.kernel_size, cfg.groups,
                                 cfg.dropout, i in cfg.attn_levels, cfg.head_dim, cfg.ctx_dim))
            if i > 0:
                self.upsample.append(Upsample(c, ch[i - 1], strides[i - 1], cfg.kernel_size))
        self.norm_out = norm(ch[0], cfg.groups)
        self.conv_out = nn.Conv1d(ch[0], cfg.out_channels, cfg.kernel_size, padding=cfg.kernel_size // 2)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)
        if cfg.wave:  # the beat grid (at the bottleneck rate) enters every level, repeated to its rate
            self.grid_in = nn.ModuleList(nn.Conv1d(cfg.grid_channels, c, 3, padding=1) for c in ch)
            self.grid_up = [math.prod(strides[i:]) for i in range(len(ch))]

    def bpm_embedding(self, bpm: torch.Tensor) -> torch.Tensor:
        """Sinusoidal embedding of log-bpm through an MLP; a learned vector where bpm <= 0."""
        lb = torch.log(torch.clamp(bpm.float(), min=1.0))  # log 60..180 = 4.09..5.19
        freqs = torch.exp(torch.linspace(0.0, math.log(200.0), 16, device=bpm.device))
        args = lb[:, None] * freqs[None, :]
        sin = torch.cat([torch.sin(args), torch.cos(args)], dim=-1)
        spec = self.bpm_mlp(sin)
        return torch.where((bpm > 0)[:, None], spec, self.bpm_unspecified[None, :].expand_as(spec))

    def conditioning(self, t: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor,
                     bpm: torch.Tensor, key: torch.Tensor, mode: torch.Tensor,
                     meter: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(emb [B, E], context [B, L + 4, C], attention bias [B, 1, 1, L + 4])."""
        mask = text_mask.float()
        tx = self.text_norm(text.float())
        pooled = (tx * mask[:, :, None]).sum(1) / torch.clamp(mask.sum(1, keepdim=True), min=1.0)
        bpm_e = self.bpm_embedding(bpm)
        key_e, mode_e, meter_e = self.key_emb(key), self.mode_emb(mode), self.meter_emb(meter)
        emb = (self.time_mlp(timestep_embedding(t, self.cfg.channels[0])) + self.text_pool(pooled)
               + bpm_e + key_e + mode_e + meter_e)
        ctrl = torch.stack([bpm_e, key_e, mode_e, meter_e], dim=1)  # [B, 4, E]
        ctx = torch.cat([self.text_ctx(tx), self.ctrl_ctx(ctrl)], dim=1)
        full_mask = torch.cat([mask, torch.ones_like(mask[:, :4])], dim=1)
        bias = ((full_mask - 1.0) * 1e4)[:, None, None, :]
        return emb, ctx, bias

    def _grid_at(self, i: int, grid: torch.Tensor) -> torch.Tensor:
        g = self.grid_in[i](grid)
        f = self.grid_up[i]
        return F.interpolate(g, scale_factor=float(f), mode="nearest") if f > 1 else g

    def forward(self, x: torch.Tensor, t: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor,
                bpm: torch.Tensor, key: torch.Tensor, mode: torch.Tensor, meter: torch.Tensor,
                grid: torch.Tensor, cond: torch.Tensor | None = None, raw: bool = False) -> torch.Tensor:
        """v for the noisy `x` at times `t`; with `side_x0` the side rows' v comes from their x0
        estimate, which `raw` returns in their place (training's loss on them)."""
        z = x
        if cond is not None:  # the spectral cascader: its COARSE conditioning after the noisy signal
            x = torch.cat([x, cond], dim=1)
        emb, ctx, bias = self.conditioning(t, text, text_mask, bpm, key, mode, meter)
        wave = self.cfg.wave
        h = self.conv_in(x) if wave else self.conv_in(torch.cat([x, grid], dim=1))
        skips = []
        for i, level in enumerate(self.down):
            if wave:
                h = h + self._grid_at(i, grid)
            h = level(h, emb, ctx, bias)
            skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
        h = self.mid(h, emb, ctx, bias)
        for j, level in enumerate(self.up):
            h = level(torch.cat([h, skips.pop()], dim=1), emb, ctx, bias)
            if j < len(self.upsample):
                h = self.upsample[j](h)
        out = self.conv_out(F.silu(self.norm_out(h)))
        if not self.cfg.side_x0:
            return out
        k = self.cfg.out_channels - self.cfg.side_bands
        alpha, sigma = _SCHEDULE.alpha_sigma(t.float())
        alpha, sigma = alpha.reshape(-1, 1, 1), sigma.reshape(-1, 1, 1)
        x0 = out[:, k:]
        if self.cfg.side_sd:
            mean, c_skip, c_out = side_precond(self.cfg, t)
            x0 = mean + c_skip * (z[:, k:] - alpha * mean) + c_out * x0
        if raw:
            return torch.cat([out[:, :k], x0], dim=1)
        return torch.cat([out[:, :k], (alpha * z[:, k:] - x0) / sigma], dim=1)


def side_precond(cfg: UNetConfig, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mean, c_skip, c_out), each [b or 1, side_bands, 1], of a preconditioned side output: with the
    rows' mean m and sd s, x0 = m + c_skip (z - alpha m) + c_out F is the least-squares linear estimate
    of x0 from z plus F scaled to the rest, c_skip = alpha s^2 / v and c_out = sigma s / sqrt(v) with
    v = alpha^2 s^2 + sigma^2 (EDM's preconditioning on this schedule)."""
    alpha, sigma = _SCHEDULE.alpha_sigma(t.float())
    alpha, sigma = alpha.reshape(-1, 1, 1), sigma.reshape(-1, 1, 1)
    mean = torch.tensor(cfg.side_mean, dtype=torch.float32).reshape(1, -1, 1)
    sd = torch.tensor(cfg.side_sd, dtype=torch.float32).reshape(1, -1, 1)
    var = alpha ** 2 * sd ** 2 + sigma ** 2
    return mean, alpha * sd ** 2 / var, sigma * sd / torch.sqrt(var)


def side_x0_weight(cfg: UNetConfig, t: torch.Tensor, cap: float) -> torch.Tensor:
    """Loss weights [b, C, 1] for a side_x0 generator: 1 on the mel rows (their v error), and on the
    side rows (their x0 error) min(1 + SNR(t), cap): toward v's own weighting of the low-noise end;
    preconditioned (side_sd), 1 / c_out(t)^2, which makes it F's own error, unit-scale at every t."""
    w = torch.ones(t.shape[0], cfg.out_channels, 1)
    if cfg.side_sd:
        w[:, cfg.out_channels - cfg.side_bands:] = side_precond(cfg, t)[2] ** -2
        return w
    _, sigma = _SCHEDULE.alpha_sigma(t.float())
    w[:, cfg.out_channels - cfg.side_bands:] = torch.clamp(sigma.reshape(-1, 1, 1) ** -2, max=float(cap))
    return w


# ----------------------------------------------------------------------------- vocoder


def build_model(stage_config: StageConfig | dict) -> nn.Module:
    """UNet1d for a generator config, Vocoder1d for a vocoder config (or their dicts)."""
    cfg = config_from_dict(stage_config) if isinstance(stage_config, dict) else stage_config
    if isinstance(cfg, UNetConfig):
        return UNet1d(cfg)
    if isinstance(cfg, VocoderConfig):
        return Vocoder1d(cfg)
    raise TypeError(f"not a stage config: {type(stage_config).__name__}")


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = [
    "UNetConfig", "VocoderConfig", "UNet1d", "Vocoder1d", "build_model", "config_from_dict",
    "tiny_generator_config", "tiny_vocoder_config", "tiny_wavegen_config", "tiny_cascader_config",
    "tiny_superres_config", "TINY_CONFIGS", "STAGE_CONFIGS", "count_params",
]
