"""Observation encoders: normalised obs history {key: (N, T_obs, ...)} -> embedding (N, D).

The embedding is exactly the observation part of the denoiser's conditioning vector, which is
what fiper's embedding-space scores read.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor, nn

from policies.normalizer import is_image_shape, module_name


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers with Mish between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.Mish())
    return nn.Sequential(*layers)


class LowDimEncoder(nn.Module):
    """MLP over the concatenated, flattened observation history of the low-dim keys."""

    def __init__(self, obs_shapes: Mapping[str, tuple[int, ...]], n_obs_steps: int, hidden: int, embed_dim: int):
        super().__init__()
        images = [k for k, s in obs_shapes.items() if is_image_shape(tuple(s))]
        if images:
            raise ValueError(f"image observation keys {images} need encoder='image' (the low-dim encoder reads vectors only)")
        self.keys = list(obs_shapes)
        in_dim = n_obs_steps * sum(int(np.prod(s)) for s in obs_shapes.values())
        self.net = mlp([in_dim, hidden, hidden, embed_dim])

    def forward(self, obs: Mapping[str, Tensor]) -> Tensor:
        flat = torch.cat([obs[k].flatten(1) for k in self.keys], dim=-1)
        return self.net(flat)


class SpatialSoftmax(nn.Module):
    """Per-channel soft-argmax: feature map (B, K, h, w) -> expected keypoint (x, y) in [-1, 1], (B, 2K)."""

    def __init__(self, height: int, width: int):
        super().__init__()
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-1, 1, width), indexing="ij")
        self.register_buffer("grid", torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=-1), persistent=False)
        self.log_temperature = nn.Parameter(torch.zeros(()))

    def forward(self, features: Tensor) -> Tensor:
        b, k = features.shape[:2]
        weights = torch.softmax(features.flatten(2) / self.log_temperature.exp(), dim=-1)  # (B, K, hw)
        return (weights @ self.grid).reshape(b, 2 * k)


class ImageTrunk(nn.Module):
    """Small strided conv net with GroupNorm + Mish ending in spatial-softmax keypoints."""

    def __init__(self, image_shape: tuple[int, int, int], channels: list[int], keypoints: int, n_groups: int,
                 downsample: int = 1):
        super().__init__()
        if image_shape[0] % downsample or image_shape[1] % downsample:
            raise ValueError(f"image_downsample={downsample} must divide the image size {image_shape[:2]}")
        layers: list[nn.Module] = [nn.AvgPool2d(downsample)] if downsample > 1 else []
        c_in, h, w = 3, image_shape[0] // downsample, image_shape[1] // downsample
        for i, c_out in enumerate(channels):
            kernel = 5 if i == 0 else 3
            layers += [nn.Conv2d(c_in, c_out, kernel, stride=2, padding=kernel // 2), nn.GroupNorm(n_groups, c_out), nn.Mish()]
            c_in, h, w = c_out, (h + 1) // 2, (w + 1) // 2
        layers.append(nn.Conv2d(c_in, keypoints, 1))
        self.convs = nn.Sequential(*layers)
        self.softmax = SpatialSoftmax(h, w)
        self.out_dim = 2 * keypoints

    def forward(self, images: Tensor) -> Tensor:
        """images (B, H, W, 3) float in [0, 1] -> (B, 2K)."""
        return self.softmax(self.convs(images.permute(0, 3, 1, 2).contiguous()))


class ImageEncoder(nn.Module):
    """Keypoints of every image key plus low-dim (proprio) keys per step, history concatenated, then an MLP."""

    def __init__(self, obs_shapes: Mapping[str, tuple[int, ...]], n_obs_steps: int, hidden: int, embed_dim: int,
                 channels: list[int], keypoints: int, n_groups: int, downsample: int = 1):
        super().__init__()
        self.image_keys = [k for k, s in obs_shapes.items() if is_image_shape(tuple(s))]
        if not self.image_keys:
            raise ValueError(f"encoder='image' needs an image observation key of per-step shape (H, W, 3); got shapes {dict(obs_shapes)}")
        self.lowdim_keys = [k for k in obs_shapes if k not in self.image_keys]
        self.trunks = nn.ModuleDict({module_name(k): ImageTrunk(tuple(obs_shapes[k]), channels, keypoints, n_groups, downsample)
                                     for k in self.image_keys})
        per_step = sum(t.out_dim for t in self.trunks.values()) + sum(int(np.prod(obs_shapes[k])) for k in self.lowdim_keys)
        self.net = mlp([n_obs_steps * per_step, hidden, embed_dim])

    def forward(self, obs: Mapping[str, Tensor]) -> Tensor:
        n, t = obs[self.image_keys[0]].shape[:2]
        parts = [self.trunks[module_name(k)](obs[k].flatten(0, 1)).reshape(n, t, -1) for k in self.image_keys]
        parts += [obs[k].reshape(n, t, -1) for k in self.lowdim_keys]
        return self.net(torch.cat(parts, dim=-1).flatten(1))
