"""Random network distillation: a frozen random target MLP and a larger trained predictor MLP.

The distance ||f(x) - g(x)|| is small where the predictor was trained (in-distribution inputs)
and large elsewhere. Used by RND-OE (on embeddings) and RND-A (on action chunks + embedding).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

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
