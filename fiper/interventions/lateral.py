"""The part of a steering gradient across the predicted path: what bends the path without re-timing it."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def lateral_part(grad: Tensor, x0: Tensor, dims: Sequence[int], velocity: bool = False) -> Tensor:
    """The gradient without its component along the predicted path, on the position dims.

    The path's local direction is the central difference of the positions (or, for velocity
    actions, the velocity itself). What remains bends the path without re-timing it.
    """
    dims = list(dims)
    out = grad.clone()
    out[..., dims] = lateral(grad[..., dims], x0[..., dims], velocity)
    return out


def lateral(g: Tensor, p: Tensor, velocity: bool) -> Tensor:
    """``lateral_part`` on position blocks: gradient g and positions p, both (..., H, k)."""
    if velocity or p.shape[-2] < 2:
        tangent = p
    else:
        tangent = torch.cat([p[..., 1:2, :] - p[..., :1, :], p[..., 2:, :] - p[..., :-2, :],
                             p[..., -1:, :] - p[..., -2:-1, :]], dim=-2)
    tangent = tangent / tangent.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    return g - (g * tangent).sum(-1, keepdim=True) * tangent
