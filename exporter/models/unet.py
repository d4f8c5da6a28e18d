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
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

TEXT_DIM = 384
N_KEYS = 13  # 0 = unspecified, 1..12 = TONICS
N_MODES = 5  # 0 = unspecified, 1..4 = MODES
N_METERS = 4  # 0 = unspecified, 1..3 = METERS
REPRESENTATIONS = ("mel", "coarse")


@dataclass
class UNetConfig:
    """Generator U-Net (text + controls -> log-mel v-prediction).

    The same class is the waveform route's generator (``stage="wavegen"``): ``strides`` gives each
    level transition its own downsampling factor (empty = 2 everywhere, the log-mel generator), the
    signal is 1 channel of low-rate audio (times ``audio_scale``), and the beat grid enters every
    level at the bottleneck rate instead of being stacked onto the input.
    """

    stage: str = "generator"
    in_channels: int = 80
    out_channels: int = 80
    grid_channels: int = 4
    channels: tuple[int, ...] = (48, 96, 144, 192)
    blocks_per_level: int = 1
    kernel_size: int = 5
    attn_levels: tuple[int, ...] = (2, 3)  # levels (0 = full rate) with self + cross attention
    head_dim: int = 48
    groups: int = 8
    emb_dim: int = 192  # timestep/conditioning embedding width
    ctx_dim: int = 192  # cross-attention context width
    text_dim: int = TEXT_DIM
    dropout: float = 0.0
    mel_mean: float = -4.5
    mel_scale: float = 7.0
    # waveform route ("wavegen"): per-level strides whose product is the samples per grid frame
    # (3200 Hz / 50 Hz = 64), the audio's scale and rate
    strides: tuple[int, ...] = ()
    audio_scale: float = 1.0
    sample_rate: int = 0
    representation: str = "mel"  # generator: "mel" (80-bin 16 kHz) or "coarse" (bridge.features.COARSE)

    def __post_init__(self) -> None:
        self.channels = tuple(int(c) for c in self.channels)
        self.attn_levels = tuple(int(a) for a in self.attn_levels)
        self.strides = tuple(int(s) for s in self.strides)
        validate_common(self.channels, self.groups, self.kernel_size, self.blocks_per_level)
        if self.stage not in ("generator", "wavegen"):
            raise ValueError(f"UNetConfig.stage must be 'generator' or 'wavegen', got {self.stage!r}")
        if self.stage == "wavegen":
            if len(self.strides) != len(self.channels) - 1 or any(s < 1 for s in self.strides):
                raise ValueError("a wavegen needs positive strides, one per level transition "
                                 f"(len(channels) - 1 = {len(self.channels) - 1}), got {self.strides}")
            if self.in_channels != 1 or self.out_channels != 1:
                raise ValueError("a wavegen generates 1 channel of audio: in_channels = out_channels = 1")
            if self.sample_rate <= 0:
                raise ValueError("a wavegen needs its sample_rate (e.g. 3200)")
        elif self.strides:
            raise ValueError("strides are for the waveform generator (stage 'wavegen') only")
        if self.representation not in REPRESENTATIONS:
            raise ValueError(f"representation {self.representation!r} is not one of {', '.join(REPRESENTATIONS)}")
        if self.representation == "coarse":
            from n2m.bridge.features import COARSE

            if self.stage != "generator" or self.in_channels != COARSE.n_bins or self.out_channels != COARSE.n_bins:
                raise ValueError(f"a coarse generator has in_channels = out_channels = {COARSE.n_bins} "
                                 f"(the COARSE mel's bins), got {self.in_channels}/{self.out_channels}")
        for a in self.attn_levels:
            if not 0 <= a < len(self.channels):
                raise ValueError(f"attn level {a} outside 0..{len(self.channels) - 1}")
        for a in self.attn_levels:
            c = self.channels[a]
            if c % self.head_dim:
                raise ValueError(f"channels {c} not a multiple of head_dim {self.head_dim}")

    @property
    def wave(self) -> bool:
        return self.stage == "wavegen"

    @property
    def level_strides(self) -> tuple[int, ...]:
        return self.strides if self.wave else (2,) * (len(self.channels) - 1)

    @property
    def frame_multiple(self) -> int:
        """Grid frames must be a multiple of this (the wavegen's bottleneck runs at the grid rate)."""
        return 1 if self.wave else 2 ** (len(self.channels) - 1)

    @property
    def hop(self) -> int:
        """Output samples (or mel frames) per grid frame."""
        return math.prod(self.strides) if self.wave else 1

    @property
    def mel_norm(self) -> dict[str, float]:
        return {"mean": self.mel_mean, "scale": self.mel_scale}


@dataclass
class VocoderConfig:
    """Waveform U-Net cascader (normalised log-mel -> 16 kHz audio v-prediction).

    The same class is the waveform route's audio-conditioned cascaders: ``stage="cascader"``
    (3.2 kHz -> 16 kHz) and ``stage="superres"`` (16 kHz -> 48 kHz). Those take, instead of the
    mel, the lower-rate audio upsampled to ``sample_rate`` (bridge.resample), noise-augmented to
    diffusion time ``aug`` (0 = clean), stacked onto the noisy input as a second channel.
    """

    stage: str = "vocoder"
    channels: tuple[int, ...] = (16, 32, 64, 128, 192)
    strides: tuple[int, ...] = (4, 4, 4, 5)  # product = mel hop (320)
    blocks_per_level: int = 1
    kernel_size: int = 5
    groups: int = 8
    emb_dim: int = 128
    n_mels: int = 80
    dropout: float = 0.0
    mel_mean: float = -4.5
    mel_scale: float = 7.0
    audio_scale: float = 3.0  # the model sees audio * audio_scale; the runtime divides it out
    snippet_seconds: float = 1.0
    # audio-conditioned cascaders ("cascader", "superres"): output rate, conditioning rate, and the
    # largest noise-augmentation time drawn for the conditioning signal in training
    sample_rate: int = 16000
    cond_rate: int = 0
    aug_max: float = 0.0

    def __post_init__(self) -> None:
        self.channels = tuple(int(c) for c in self.channels)
        self.strides = tuple(int(s) for s in self.strides)
        validate_common(self.channels, self.groups, self.kernel_size, self.blocks_per_level)
        if self.stage not in AUDIO_CASCADERS + ("vocoder",):
            raise ValueError(f"VocoderConfig.stage must be 'vocoder', 'cascader' or 'superres', got {self.stage!r}")
        if self.audio_cond:
            if self.cond_rate <= 0 or self.sample_rate % self.cond_rate:
                raise ValueError(f"a {self.stage} needs cond_rate dividing sample_rate {self.sample_rate}, "
                                 f"got {self.cond_rate}")
            if not 0.0 <= self.aug_max <= 1.0:
                raise ValueError(f"aug_max must be in [0, 1], got {self.aug_max}")
        if len(self.strides) != len(self.channels) - 1:
            raise ValueError("strides needs one entry per level transition (len(channels) - 1)")
        if any(s < 1 for s in self.strides):
            raise ValueError(f"strides must be positive, got {self.strides}")

    @property
    def hop(self) -> int:
        return math.prod(self.strides)

    @property
    def audio_cond(self) -> bool:
        return self.stage in AUDIO_CASCADERS

    @property
    def up_factor(self) -> int:
        """sample_rate / cond_rate (audio-conditioned cascaders)."""
        return self.sample_rate // self.cond_rate if self.audio_cond else 1

    @property
    def mel_norm(self) -> dict[str, float]:
        return {"mean": self.mel_mean, "scale": self.mel_scale}


AUDIO_CASCADERS = ("cascader", "superres")


def validate_common(channels: tuple[int, ...], groups: int, kernel: int, blocks: int) -> None:
    if len(channels) < 1 or any(c < 1 for c in channels):
        raise ValueError(f"channels must be positive, got {channels}")
    if kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"kernel_size must be odd, got {kernel}")
    if blocks < 1:
        raise ValueError("blocks_per_level must be at least 1")
    for c in channels:
        if c % _groups(c, groups):
            raise ValueError(f"channels {c} incompatible with groups {groups}")


def _groups(c: int, groups: int) -> int:
    g = min(groups, c)
    while c % g:
        g -= 1
    return g


# ----------------------------------------------------------------------------- building blocks


def timestep_embedding(t: torch.Tensor, dim: int, scale: float = 1000.0) -> torch.Tensor:
    """[B] -> [B, dim] sinusoidal embedding of t * scale."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = (t.float() * scale)[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


def norm(c: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(_groups(c, groups), c, eps=1e-5)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-Conv, FiLM (scale/shift from the embedding), GroupNorm-SiLU-Conv, skip."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, kernel: int, groups: int,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = norm(c_in, groups)
        self.conv1 = nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2)
        self.film = nn.Linear(emb_dim, 2 * c_out)
        self.norm2 = norm(c_out, groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv1d(c_out, c_out, kernel, padding=kernel // 2)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(F.silu(emb)).unsqueeze(-1).chunk(2, dim=1)
        h = self.norm2(h) * (1.0 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    def __init__(self, c: int, head_dim: int, groups: int) -> None:
        super().__init__()
        self.heads = max(1, c // head_dim)
        self.norm = norm(c, groups)
        self.qkv = nn.Conv1d(c, 3 * c, 1)
        self.proj = nn.Conv1d(c, c, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, n = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, n)
        q, k, v = (qkv[:, i].transpose(-1, -2) for i in range(3))  # [B, H, N, D]
        h = F.scaled_dot_product_attention(q, k, v)
        return x + self.proj(h.transpose(-1, -2).reshape(b, c, n))


class CrossAttention(nn.Module):
    def __init__(self, c: int, ctx_dim: int, head_dim: int, groups: int) -> None:
        super().__init__()
        self.heads = max(1, c // head_dim)
        self.norm = norm(c, groups)
        self.q = nn.Conv1d(c, c, 1)
        self.kv = nn.Linear(ctx_dim, 2 * c)
        self.proj = nn.Conv1d(c, c, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor, ctx: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """ctx [B, L, ctx_dim]; bias [B, 1, 1, L] additive (0 = attend, large negative = padding)."""
        b, c, n = x.shape
        h = self.heads
        q = self.q(self.norm(x)).reshape(b, h, c // h, n).transpose(-1, -2)  # [B, H, N, D]
        kv = self.kv(ctx).reshape(b, -1, 2, h, c // h)
        k = kv[:, :, 0].transpose(1, 2)  # [B, H, L, D]
        v = kv[:, :, 1].transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, n))


class Downsample(nn.Module):
    """Strided conv: length N -> N / stride exactly (N must be a multiple of stride)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, 2 * stride + 1, stride=stride, padding=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest-neighbour upsampling then conv."""

    def __init__(self, c_in: int, c_out: int, stride: int, kernel: int) -> None:
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=float(self.stride), mode="nearest"))


class Level(nn.Module):
    """The ResBlocks (and optional attention) of one U-Net level, one direction."""

    def __init__(self, c_in: int, c: int, n_blocks: int, emb_dim: int, kernel: int, groups: int,
                 dropout: float, attn: bool, head_dim: int = 32, ctx_dim: int = 0) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            ResBlock(c_in if i == 0 else c, c, emb_dim, kernel, groups, dropout) for i in range(n_blocks)
        )
        self.self_attn = nn.ModuleList(SelfAttention(c, head_dim, groups) for _ in range(n_blocks)) if attn else None
        self.cross_attn = (
            nn.ModuleList(CrossAttention(c, ctx_dim, head_dim, groups) for _ in range(n_blocks))
            if attn and ctx_dim else None
        )

    def forward(self, x: torch.Tensor, emb: torch.Tensor, ctx: torch.Tensor | None = None,
                bias: torch.Tensor | None = None) -> torch.Tensor:
        for i, block in enumerate(self.blocks):
            x = block(x, emb)
            if self.self_attn is not None:
                x = self.self_attn[i](x)
            if self.cross_attn is not None and ctx is not None and bias is not None:
                x = self.cross_attn[i](x, ctx, bias)
        return x


# ----------------------------------------------------------------------------- generator


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
                grid: torch.Tensor) -> torch.Tensor:
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
        return self.conv_out(F.silu(self.norm_out(h)))


# ----------------------------------------------------------------------------- vocoder


class Vocoder1d(nn.Module):
    """Waveform U-Net cascader: noisy audio + clean normalised log-mel -> v-prediction of audio."""

    def __init__(self, cfg: VocoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        ch, e, k = cfg.channels, cfg.emb_dim, cfg.kernel_size
        self.time_mlp = nn.Sequential(nn.Linear(32, e), nn.SiLU(), nn.Linear(e, e))
        if cfg.audio_cond:
            # the upsampled low-rate audio is a second input channel; its augmentation level is
            # embedded like the diffusion time
            self.conv_in = nn.Conv1d(2, ch[0], k, padding=k // 2)
            self.aug_mlp = nn.Sequential(nn.Linear(32, e), nn.SiLU(), nn.Linear(e, e))
        else:
            self.conv_in = nn.Conv1d(1, ch[0], k, padding=k // 2)
            # the mel enters every level: projected at the frame rate, then repeated to the level's rate
            self.mel_in = nn.ModuleList(nn.Conv1d(cfg.n_mels, c, 3, padding=1) for c in ch)
        self.up_factor = [math.prod(cfg.strides[i:]) for i in range(len(ch))]
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        for i, c in enumerate(ch):
            self.down.append(Level(c, c, cfg.blocks_per_level, e, k, cfg.groups, cfg.dropout, False))
            if i < len(ch) - 1:
                self.downsample.append(Downsample(c, ch[i + 1], cfg.strides[i]))
        self.mid = Level(ch[-1], ch[-1], 1, e, k, cfg.groups, cfg.dropout, False)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i in reversed(range(len(ch))):
            self.up.append(Level(2 * ch[i], ch[i], cfg.blocks_per_level, e, k, cfg.groups, cfg.dropout, False))
            if i > 0:
                self.upsample.append(Upsample(ch[i], ch[i - 1], cfg.strides[i - 1], k))
        self.norm_out = norm(ch[0], cfg.groups)
        self.conv_out = nn.Conv1d(ch[0], 1, k, padding=k // 2)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def _mel_at(self, i: int, mel: torch.Tensor) -> torch.Tensor:
        m = self.mel_in[i](mel)
        f = self.up_factor[i]
        return F.interpolate(m, scale_factor=float(f), mode="nearest") if f > 1 else m

    def forward(self, x: torch.Tensor, t: torch.Tensor, mel: torch.Tensor | None = None,
                aug: torch.Tensor | None = None, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Vocoder: (x, t, mel). Audio-conditioned cascaders: (x, t, cond, aug), positionally or by
        name, with cond [B, 1, N] the upsampled (noise-augmented) low-rate audio times audio_scale
        and aug [B] its augmentation time."""
        c = mel if mel is not None else cond
        if c is None:
            raise TypeError("Vocoder1d needs its conditioning (mel, or cond for an audio cascader)")
        emb = self.time_mlp(timestep_embedding(t, 32))
        audio_cond = self.cfg.audio_cond
        if audio_cond:
            a = torch.zeros_like(t) if aug is None else aug
            emb = emb + self.aug_mlp(timestep_embedding(a, 32))
            h = self.conv_in(torch.cat([x, c], dim=1))
        else:
            h = self.conv_in(x)
        skips = []
        for i, level in enumerate(self.down):
            h = level(h if audio_cond else h + self._mel_at(i, c), emb)
            skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
        h = self.mid(h, emb)
        for j, level in enumerate(self.up):
            h = level(torch.cat([h, skips.pop()], dim=1), emb)
            if j < len(self.upsample):
                h = self.upsample[j](h)
        return self.conv_out(F.silu(self.norm_out(h)))


# ----------------------------------------------------------------------------- factories


StageConfig = UNetConfig | VocoderConfig
STAGE_CONFIGS: dict[str, type] = {"generator": UNetConfig, "vocoder": VocoderConfig, "wavegen": UNetConfig,
                                  "cascader": VocoderConfig, "superres": VocoderConfig}


def config_from_dict(d: dict) -> StageConfig:
    """A stage config from its dict (as saved in checkpoints), by its 'stage' field."""
    d = dict(d)
    stage = d.get("stage")
    cls = STAGE_CONFIGS.get(stage)  # type: ignore[arg-type]
    if cls is None:
        raise ValueError(f"unknown stage {stage!r}: expected one of {', '.join(STAGE_CONFIGS)}")
    known = set(cls.__dataclass_fields__)
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"unknown {stage} config fields: {sorted(unknown)}")
    return cls(**d)


def build_model(stage_config: StageConfig | dict) -> nn.Module:
    """UNet1d for a generator config, Vocoder1d for a vocoder config (or their dicts)."""
    cfg = config_from_dict(stage_config) if isinstance(stage_config, dict) else stage_config
    if isinstance(cfg, UNetConfig):
        return UNet1d(cfg)
    if isinstance(cfg, VocoderConfig):
        return Vocoder1d(cfg)
    raise TypeError(f"not a stage config: {type(stage_config).__name__}")


def tiny_generator_config() -> UNetConfig:
    """A generator of a few thousand parameters (tests, exporter fixtures)."""
    return UNetConfig(channels=(8, 16), attn_levels=(1,), head_dim=8, groups=4, emb_dim=8,
                      ctx_dim=8, kernel_size=3)


def tiny_vocoder_config() -> VocoderConfig:
    """A vocoder of a few thousand parameters (tests, exporter fixtures); hop still 320."""
    return VocoderConfig(channels=(4, 8, 8, 16, 16), strides=(4, 4, 4, 5), groups=4, emb_dim=16,
                         kernel_size=3)


def tiny_wavegen_config() -> UNetConfig:
    """A 3.2 kHz waveform generator of a few thousand parameters; strides 4, 4, 4 (64 samples per
    50 Hz grid frame), attention only at the bottleneck."""
    return UNetConfig(stage="wavegen", in_channels=1, out_channels=1, channels=(4, 8, 8, 16),
                      strides=(4, 4, 4), attn_levels=(3,), head_dim=8, groups=4, emb_dim=8, ctx_dim=8,
                      kernel_size=3, audio_scale=3.0, sample_rate=3200)


def tiny_cascader_config() -> VocoderConfig:
    """A 3.2 kHz -> 16 kHz cascader of a few thousand parameters (hop 320 at 16 kHz)."""
    return VocoderConfig(stage="cascader", channels=(4, 8, 8, 16, 16), strides=(4, 4, 4, 5), groups=4,
                         emb_dim=16, kernel_size=3, sample_rate=16000, cond_rate=3200, aug_max=0.3)


def tiny_superres_config() -> VocoderConfig:
    """A 16 kHz -> 48 kHz cascader of a few thousand parameters (hop 960 at 48 kHz)."""
    return VocoderConfig(stage="superres", channels=(4, 8, 8, 16, 16), strides=(4, 4, 6, 10), groups=4,
                         emb_dim=16, kernel_size=3, sample_rate=48000, cond_rate=16000, aug_max=0.3,
                         snippet_seconds=0.5)


TINY_CONFIGS = {"generator": tiny_generator_config, "vocoder": tiny_vocoder_config,
                "wavegen": tiny_wavegen_config, "cascader": tiny_cascader_config,
                "superres": tiny_superres_config}


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = [
    "UNetConfig", "VocoderConfig", "UNet1d", "Vocoder1d", "build_model", "config_from_dict",
    "tiny_generator_config", "tiny_vocoder_config", "tiny_wavegen_config", "tiny_cascader_config",
    "tiny_superres_config", "TINY_CONFIGS", "STAGE_CONFIGS", "count_params",
]
