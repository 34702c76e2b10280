"""Particle operations for steering: normalising, RBF repulsion, effective sample size, resampling.

All functions work on a leading (N, B) grid: N independent observations, B particles each, and
stay on the tensors' device: none reads a value back to the host, so a sampling loop that calls
them every step never waits for the device.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def unit_normalise(v: Tensor, floor: float = 0.0, eps: float = 1e-12) -> Tensor:
    """Divide each particle's (N, B, ...) vector by max(its L2 norm, floor).

    floor = 0 gives unit vectors (zero stays zero); a floor > 0 keeps vectors shorter than it
    proportionally short, so a particle whose reward is already saturated is not pushed.
    """
    norm = torch.linalg.vector_norm(v, dim=tuple(range(2, v.ndim)), keepdim=True)
    return v / norm.clamp_min(max(floor, eps))


def rbf_repulsion(y: Tensor) -> Tensor:
    """Direction pushing particles apart: -grad_{y_i} sum_j k(y_i, y_j) for an RBF kernel.

    y (N, B, F). k = exp(-|y_i - y_j|^2 / h) with the median heuristic h = med(|y_i - y_j|^2) / log(B + 1)
    (per observation). The result is rescaled so its mean per-particle norm is 1 per observation.
    """
    n, b, _ = y.shape
    if b < 2:
        return torch.zeros_like(y)
    sq = torch.cdist(y, y).square()  # (N, B, B) pairwise squared distances
    # The median over pairs b < c equals the median over b != c (each pair counted twice): an index
    # made on the device, where a boolean off-diagonal mask would read its count back to the host.
    upper = torch.triu_indices(b, b, 1, device=y.device)
    h = sq[:, upper[0], upper[1]].median(dim=-1).values.clamp_min(1e-12) / math.log(b + 1)  # (N,)
    k = torch.exp(-sq / h[:, None, None])
    # sum_j k_ij (y_i - y_j) = y_i * sum_j k_ij - (K y)_i, without the (N, B, B, F) difference tensor.
    force = (2.0 / h[:, None, None]) * (y * k.sum(-1, keepdim=True) - k @ y)  # (N, B, F)
    mean_norm = force.norm(dim=-1).mean(dim=-1).clamp_min(1e-12)  # (N,)
    return force / mean_norm[:, None, None]


def normalised_weights(log_w: Tensor) -> Tensor:
    """Softmax over particles of log weights (N, B)."""
    return torch.softmax(log_w, dim=-1)


def effective_sample_size(log_w: Tensor) -> Tensor:
    """ESS = 1 / sum_i w_i^2 for normalised weights, per observation (N,); in [1, B]."""
    w = normalised_weights(log_w)
    return 1.0 / (w**2).sum(-1)


def systematic_resample(log_w: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Systematic resampling: ancestor indices (N, B) long, particle i drawn ~ B * w_i times."""
    n, b = log_w.shape
    w = normalised_weights(log_w.double())
    cdf = torch.cumsum(w, dim=-1)
    cdf[:, -1] = 1.0  # guard against round-off
    u = torch.rand(n, 1, generator=generator, device=log_w.device, dtype=torch.float64)
    points = (u + torch.arange(b, device=log_w.device, dtype=torch.float64)) / b
    return torch.searchsorted(cdf, points).clamp_max(b - 1)


def resample_low_ess(log_w: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Ancestors (N, B): systematic draws where ESS < B / 2, the identity elsewhere; plus ESS (N,) and that mask (N,).

    Decided with ``torch.where`` on the device: the draws are made for every observation and kept
    only where the weights have collapsed, so no host synchronisation is needed to branch.
    """
    n, b = log_w.shape
    ess = effective_sample_size(log_w)
    low = ess < b / 2
    keep = torch.arange(b, device=log_w.device).expand(n, b)
    return torch.where(low[:, None], systematic_resample(log_w, generator), keep), ess, low
