"""Exchangeable synthetic 'successful rollout' score traces for the calibration tests."""

from __future__ import annotations

import numpy as np

from fiper.aggregation import windowed_sum


def ar1_scores(rng: np.random.Generator, batch: tuple[int, ...], num_steps: int, *, phi=0.8, rho=0.7):
    """Two dependent positive score traces per rollout, with random lengths.

    Each rollout: a per-rollout offset, a shared time trend, and AR(1) noise; the second score's
    noise is correlated (rho) with the first's. Returns (s1, s2, lengths) with s of shape
    (*batch, T) (NaN past the length) and lengths (*batch,) in [T/2, T].
    """
    shape = (*batch, num_steps)
    eps1 = rng.standard_normal(shape)
    eps2 = rho * eps1 + np.sqrt(1 - rho**2) * rng.standard_normal(shape)
    z1, z2 = np.empty(shape), np.empty(shape)
    z1[..., 0], z2[..., 0] = eps1[..., 0], eps2[..., 0]
    innov = np.sqrt(1 - phi**2)
    for t in range(1, num_steps):
        z1[..., t] = phi * z1[..., t - 1] + innov * eps1[..., t]
        z2[..., t] = phi * z2[..., t - 1] + innov * eps2[..., t]
    offset = 0.3 * rng.standard_normal((*batch, 1))
    trend = 0.5 * np.sin(np.arange(num_steps) / 6.0)
    s1 = np.exp(0.5 * z1 + offset + trend)
    s2 = np.exp(0.4 * z2 + 0.5 * offset - trend)
    lengths = rng.integers(num_steps // 2, num_steps + 1, size=batch)
    pad = np.arange(num_steps) >= lengths[..., None]
    s1[pad] = np.nan
    s2[pad] = np.nan
    return s1, s2, lengths


def windowed_batch(scores: np.ndarray, lengths: np.ndarray, window: int) -> np.ndarray:
    """fiper's offline windowed sum applied to a batch (..., E, T) by flattening the batch."""
    flat = windowed_sum(scores.reshape(-1, scores.shape[-1]), window, lengths.reshape(-1))
    return flat.reshape(scores.shape)
