"""The blocks both U-Nets are built from: ResBlocks (GroupNorm + SiLU + Conv1d with FiLM from the
timestep and conditioning embedding), self- and cross-attention through
`F.scaled_dot_product_attention`, strided-conv down- and nearest + conv upsampling."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from n2m.exporter.models.configs import _groups


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
