"""Random network distillation: a frozen random target MLP and a larger trained predictor MLP.

The distance ||f(x) - g(x)|| is small where the predictor was trained (in-distribution inputs)
and large elsewhere. Used by RND-OE (on embeddings) and RND-A (on action chunks + embedding).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from fiper.nn import mlp, orthogonal_init_


def check_widths(owner: str, target_widths: Sequence[int], predictor_widths: Sequence[int], out_dim: int) -> tuple[list[int], list[int], int]:
    """Validated (target hidden widths, predictor hidden widths, output width)."""
    tw, pw = [int(w) for w in target_widths], [int(w) for w in predictor_widths]
    if not tw or not pw:
        raise ValueError(f"{owner}: target_widths and predictor_widths need at least one hidden layer each, got {tw} and {pw}")
    if min(tw + pw) < 1 or int(out_dim) < 1:
        raise ValueError(f"{owner}: layer widths and out_dim must be >= 1, got {tw}, {pw}, out_dim={out_dim}")
    if len(pw) < len(tw):
        raise ValueError(
            f"{owner}: the predictor must be at least as deep as the target (RND keeps it larger), "
            f"got {len(pw)} predictor vs {len(tw)} target hidden layers"
        )
    return tw, pw, int(out_dim)


def sized_widths(in_dim: int, target_widths: Sequence[int] | None, predictor_widths: Sequence[int] | None,
                 out_dim: int | None) -> tuple[list[int], list[int], int]:
    """Widths with every None sized from the input: hidden w = clip(2 in_dim, 32, 128), target [w],
    predictor one layer deeper than the target, output w // 2 (small nets: cheap per decision)."""
    w = int(min(128, max(32, 2 * int(in_dim))))
    tw = [w] if target_widths is None else [int(x) for x in target_widths]
    pw = [w] * (len(tw) + 1) if predictor_widths is None else [int(x) for x in predictor_widths]
    return tw, pw, w // 2 if out_dim is None else int(out_dim)


class RNDNetworks(nn.Module):
    """Target g (frozen, random) and predictor f; ``forward`` gives ||f(x) - g(x)||_2 per row."""

    def __init__(self, in_dim: int, target_widths: Sequence[int], predictor_widths: Sequence[int], out_dim: int):
        super().__init__()
        self.target = mlp(in_dim, target_widths, out_dim, activation="leaky_relu")
        self.predictor = mlp(in_dim, predictor_widths, out_dim, activation="leaky_relu")
        self.target.requires_grad_(False)

    def init_(self, seed: int) -> RNDNetworks:
        """Orthogonal init (gain sqrt 2, zero bias) of both networks from one seeded CPU generator."""
        gen = torch.Generator().manual_seed(seed)
        orthogonal_init_(self.target, gain=math.sqrt(2.0), generator=gen)
        orthogonal_init_(self.predictor, gain=math.sqrt(2.0), generator=gen)
        return self

    def forward(self, x: Tensor) -> Tensor:
        return torch.linalg.vector_norm(self.predictor(x) - self.target(x), dim=-1)

    def loss(self, x: Tensor) -> Tensor:
        """Mean squared prediction error (the predictor's training objective)."""
        return (self.predictor(x) - self.target(x)).pow(2).mean()

    @property
    def max_width(self) -> int:
        return max(m.out_features for m in self.modules() if isinstance(m, nn.Linear))


def host_layers(net: nn.Sequential) -> list[tuple[np.ndarray, np.ndarray, float | None]] | None:
    """(weight, bias, LeakyReLU slope after it or None) per layer of a CPU float32 Linear/LeakyReLU MLP,
    as numpy views of the module's own memory (in-place weight updates stay visible); None otherwise."""
    layers: list[tuple[np.ndarray, np.ndarray, float | None]] = []
    for module in net:
        if isinstance(module, nn.Linear) and module.bias is not None and module.weight.device.type == "cpu" and module.weight.dtype == torch.float32:
            layers.append((module.weight.detach().numpy(), module.bias.detach().numpy(), None))
        elif isinstance(module, nn.LeakyReLU) and layers and layers[-1][2] is None:
            layers[-1] = (*layers[-1][:2], float(module.negative_slope))
        else:
            return None
    return layers


def host_forward(layers: list[tuple[np.ndarray, np.ndarray, float | None]], x: np.ndarray) -> np.ndarray:
    """One input row (in_dim,) through ``host_layers`` in numpy: no torch dispatch per layer."""
    for weight, bias, slope in layers:
        x = weight @ x
        x += bias
        if slope is not None:
            x = np.maximum(x, slope * x) if slope <= 1 else np.where(x > 0, x, slope * x)
    return x
