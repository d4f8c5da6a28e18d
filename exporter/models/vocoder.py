"""The waveform cascaders: the vocoder (log-mel -> audio) and the audio-conditioned cascaders
(lower-rate audio -> audio), one U-Net without attention (see exporter.models.unet's docstring)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from n2m.exporter.models.configs import VocoderConfig
from n2m.exporter.models.modules import Downsample, Level, Upsample, norm, timestep_embedding


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
