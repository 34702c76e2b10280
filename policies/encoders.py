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


#: An image side (after ``image_downsample``) above which training is slow on a CPU: the trunk's cost grows with the pixels.
LARGE_IMAGE_SIDE = 128


def trunk_map(height: int, width: int, downsample: int, layers: int) -> tuple[int, int]:
    """The (h, w) feature map whose keypoints the image trunk reads: the image average-pooled by ``downsample``, then
    halved (rounded up) by each of its ``layers`` stride-2 convolutions (one per ``policy.image_channels`` entry)."""
    h, w = height // downsample, width // downsample
    for _ in range(layers):
        h, w = (h + 1) // 2, (w + 1) // 2
    return h, w


def usable_downsamples(sides: Mapping[str, tuple[int, int]], layers: int | None) -> list[int]:
    """The factors that divide every image's sides and (``layers`` given) leave each a keypoint map larger than 1x1."""
    return [d for d in range(1, min(min(s) for s in sides.values()) + 1)
            if all(h % d == 0 and w % d == 0 for h, w in sides.values())
            and (layers is None or all(trunk_map(h, w, d, layers) != (1, 1) for h, w in sides.values()))]


def check_encoder_keys(obs_shapes: Mapping[str, tuple[int, ...]], encoder: str, downsample: int = 1,
                       layers: int | None = None) -> None:
    """Refuse observation keys the chosen encoder cannot read (naming the image policy groups and ``policy.obs_keys``),
    an image side ``image_downsample`` does not divide, and (given the trunk's number of stride-2 ``layers``) an image
    the trunk would shrink to a 1x1 map, whose keypoints are the same whatever it shows."""
    images = [k for k, s in obs_shapes.items() if is_image_shape(tuple(s))]
    others = [k for k in obs_shapes if k not in images]
    if encoder == "lowdim" and images:
        keep = f", or leave them out with policy.obs_keys=[{','.join(others)}]" if others else ""
        raise ValueError(f"observation keys {images} are (H, W, 3) images, which the low-dim encoder (encoder='lowdim') cannot "
                         "read: train an image policy (encoder='image': policy=diffusion_mlp_image or another *_image group; "
                         f"in the pipeline train.policy=diffusion_mlp_image){keep}")
    if encoder == "image" and not images:
        raise ValueError(f"encoder='image' needs an image observation key of per-step shape (H, W, 3), got shapes "
                         f"{ {k: tuple(s) for k, s in obs_shapes.items()} }: train a low-dim policy (policy=diffusion_mlp), or "
                         "give the env a camera key (gymnasium.wrappers.AddRenderObservation(env, render_only=False))")
    if encoder != "image":
        return
    sides = {k: (int(obs_shapes[k][0]), int(obs_shapes[k][1])) for k in images}
    usable = usable_downsamples(sides, layers)
    choose = (f"choose one of {usable}, the factors dividing the sides of every image {sides}"
              + (" and leaving each a keypoint map larger than 1x1" if layers is not None else "")
              if usable else f"no factor suits every image {sides}")
    uneven = {k: s for k, s in sides.items() if s[0] % downsample or s[1] % downsample}
    if uneven:
        raise ValueError(f"policy.image_downsample={downsample} must divide the sides of the images {uneven}: {choose}, or "
                         "render a size it divides (gymnasium.make(id, render_mode='rgb_array', width=..., height=...))")
    blind = {k: s for k, s in sides.items() if layers is not None and trunk_map(*s, downsample, layers) == (1, 1)}
    if blind:
        shown = ", ".join(f"{k!r} {h}x{w} is {h // downsample}x{w // downsample}" for k, (h, w) in blind.items())
        raise ValueError(f"images {shown} after policy.image_downsample={downsample}, which the image trunk's {layers} stride-2 "
                         f"convolutions (policy.image_channels) reduce to a 1x1 map: its keypoints would be the same "
                         f"whatever the camera shows, so the policy would not see {'it' if len(blind) == 1 else 'them'}. "
                         f"{choose[0].upper()}{choose[1:]}; or render {'it' if len(blind) == 1 else 'them'} larger (a side of at least {2 ** layers + 1} px after the factor), or leave it out with "
                         "policy.obs_keys=[...]")


def large_image_note(obs_shapes: Mapping[str, tuple[int, ...]], downsample: int = 1) -> str | None:
    """A note naming image keys whose side after ``downsample`` exceeds LARGE_IMAGE_SIDE, and the fixes; else None."""
    big = {k: tuple(s[:2]) for k, s in obs_shapes.items() if is_image_shape(tuple(s)) and max(s[:2]) // downsample > LARGE_IMAGE_SIDE}
    if not big:
        return None
    shown = ", ".join(f"{k!r} {h}x{w}" for k, (h, w) in big.items())
    return (f"note: images {shown} px (policy.image_downsample={downsample}) make training slow: the image trunk's cost grows "
            "with the pixels (one CPU thread, batch 64: 0.1 s a step at 64x64, 18 s at 480x480, gymnasium's default render "
            "size). Render smaller (gymnasium.make(id, render_mode='rgb_array', width=64, height=64)) or average-pool them "
            "(policy.image_downsample=<a factor dividing the side>)")


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
        check_encoder_keys(obs_shapes, "lowdim")
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
        layers: list[nn.Module] = [nn.AvgPool2d(downsample)] if downsample > 1 else []
        c_in = 3
        for i, c_out in enumerate(channels):
            kernel = 5 if i == 0 else 3
            layers += [nn.Conv2d(c_in, c_out, kernel, stride=2, padding=kernel // 2), nn.GroupNorm(n_groups, c_out), nn.Mish()]
            c_in = c_out
        layers.append(nn.Conv2d(c_in, keypoints, 1))
        self.convs = nn.Sequential(*layers)
        self.softmax = SpatialSoftmax(*trunk_map(image_shape[0], image_shape[1], downsample, len(channels)))
        self.out_dim = 2 * keypoints

    def forward(self, images: Tensor) -> Tensor:
        """images (B, H, W, 3) float in [0, 1] -> (B, 2K)."""
        return self.softmax(self.convs(images.permute(0, 3, 1, 2).contiguous()))


class ImageEncoder(nn.Module):
    """Keypoints of every image key plus low-dim (proprio) keys per step, history concatenated, then an MLP."""

    def __init__(self, obs_shapes: Mapping[str, tuple[int, ...]], n_obs_steps: int, hidden: int, embed_dim: int,
                 channels: list[int], keypoints: int, n_groups: int, downsample: int = 1):
        super().__init__()
        check_encoder_keys(obs_shapes, "image", downsample, len(channels))
        self.image_keys = [k for k, s in obs_shapes.items() if is_image_shape(tuple(s))]
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
