"""Denoisers: (noisy chunk (B, H, A), time (B,), embedding (B, D)) -> prediction (B, H, A).

Both FiLM-condition every block on [embedding, time embedding]; the prediction is the noise
(diffusion) or the velocity (flow), the denoiser does not care which.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class TimeEmbedding(nn.Module):
    """Sinusoidal features of a scalar time followed by a small MLP."""

    def __init__(self, dim: int):
        super().__init__()
        half = dim // 2
        self.register_buffer("freqs", torch.exp(-math.log(10000.0) * torch.arange(half) / max(1, half - 1)), persistent=False)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.Mish(), nn.Linear(4 * dim, dim))

    def forward(self, t: Tensor) -> Tensor:
        angles = t.float()[:, None] * self.freqs[None]
        return self.mlp(torch.cat([angles.sin(), angles.cos()], dim=-1))


class ConvBlock(nn.Module):
    """Conv1d -> GroupNorm -> Mish."""

    def __init__(self, c_in: int, c_out: int, kernel: int, groups: int):
        super().__init__()
        self.net = nn.Sequential(nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2), nn.GroupNorm(groups, c_out), nn.Mish())

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class FiLMResBlock(nn.Module):
    """Two conv blocks; the conditioning vector scales and shifts the first one's output."""

    def __init__(self, c_in: int, c_out: int, cond_dim: int, kernel: int, groups: int):
        super().__init__()
        self.block1 = ConvBlock(c_in, c_out, kernel, groups)
        self.block2 = ConvBlock(c_out, c_out, kernel, groups)
        self.film = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, 2 * c_out))
        self.skip = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        scale, shift = self.film(cond)[..., None].chunk(2, dim=1)
        h = self.block1(x) * (1 + scale) + shift
        return self.block2(h) + self.skip(x)


class TemporalUNet(nn.Module):
    """1-D U-Net over the horizon: channels = action dims, halves the length at each level."""

    def __init__(self, action_dim: int, embed_dim: int, down_dims: list[int], kernel: int = 5, groups: int = 8,
                 time_dim: int = 64):
        super().__init__()
        self.time = TimeEmbedding(time_dim)
        cond = embed_dim + time_dim
        widths = [action_dim, *down_dims]
        self.down = nn.ModuleList()
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            last = i == len(down_dims) - 1
            self.down.append(nn.ModuleList([
                FiLMResBlock(a, b, cond, kernel, groups),
                FiLMResBlock(b, b, cond, kernel, groups),
                nn.Identity() if last else nn.Conv1d(b, b, 3, stride=2, padding=1),
            ]))
        mid = down_dims[-1]
        self.mid = nn.ModuleList([FiLMResBlock(mid, mid, cond, kernel, groups), FiLMResBlock(mid, mid, cond, kernel, groups)])
        self.up = nn.ModuleList()
        for i, (b, a) in enumerate(zip(reversed(down_dims[1:]), reversed(down_dims[:-1]))):
            self.up.append(nn.ModuleList([
                FiLMResBlock(2 * b, a, cond, kernel, groups),
                FiLMResBlock(a, a, cond, kernel, groups),
                nn.ConvTranspose1d(a, a, 4, stride=2, padding=1),
            ]))
        self.final = nn.Sequential(ConvBlock(down_dims[0], down_dims[0], kernel, groups), nn.Conv1d(down_dims[0], action_dim, 1))

    def forward(self, x: Tensor, t: Tensor, embedding: Tensor) -> Tensor:
        cond = torch.cat([embedding, self.time(t)], dim=-1)
        h = x.transpose(1, 2)  # (B, A, H)
        skips = []
        for res1, res2, down in self.down:
            h = res2(res1(h, cond), cond)
            skips.append(h)
            h = down(h)
        for block in self.mid:
            h = block(h, cond)
        for res1, res2, up in self.up:
            h = torch.cat([h, skips.pop()], dim=1)
            h = up(res2(res1(h, cond), cond))
        # Skips are consumed deepest first; the full-resolution one of the first level stays unused
        # (as in diffusion_policy's ConditionalUnet1D).
        return self.final(h).transpose(1, 2)


class FiLMLinearBlock(nn.Module):
    """Residual MLP block: LayerNorm -> Linear -> FiLM -> Mish -> Linear."""

    def __init__(self, width: int, cond_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1, self.fc2 = nn.Linear(width, width), nn.Linear(width, width)
        self.film = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, 2 * width))

    def forward(self, h: Tensor, cond: Tensor) -> Tensor:
        scale, shift = self.film(cond).chunk(2, dim=-1)
        return h + self.fc2(nn.functional.mish(self.fc1(self.norm(h)) * (1 + scale) + shift))


class MLPDenoiser(nn.Module):
    """Residual MLP over the flattened chunk, FiLM-conditioned like the U-Net."""

    def __init__(self, action_dim: int, horizon: int, embed_dim: int, hidden: int = 256, layers: int = 3, time_dim: int = 64):
        super().__init__()
        self.time = TimeEmbedding(time_dim)
        cond = embed_dim + time_dim
        self.inp = nn.Linear(horizon * action_dim, hidden)
        self.blocks = nn.ModuleList([FiLMLinearBlock(hidden, cond) for _ in range(layers)])
        self.out = nn.Sequential(nn.LayerNorm(hidden), nn.Mish(), nn.Linear(hidden, horizon * action_dim))

    def forward(self, x: Tensor, t: Tensor, embedding: Tensor) -> Tensor:
        cond = torch.cat([embedding, self.time(t)], dim=-1)
        h = self.inp(x.flatten(1))
        for block in self.blocks:
            h = block(h, cond)
        return self.out(h).reshape(x.shape)
