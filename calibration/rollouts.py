"""Padded-rollout convention shared by calibration, aggregation and evaluation.

A set of E rollouts of per-decision values is a float array ``(E, T)`` plus integer
``lengths (E,)``: rollout i occupies steps ``0 .. lengths[i]-1``; entries at or beyond its length
are padding and are never read (NaN is the recommended fill). ``lengths=None`` means every
rollout spans all T steps.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def pad_rollouts(sequences: Sequence, fill: float = np.nan) -> tuple[np.ndarray, np.ndarray]:
    """Stack 1-D per-rollout sequences into a padded ``(E, T)`` float array and ``lengths (E,)``."""
    rows = [np.asarray(s, dtype=np.float64) for s in sequences]
    for i, row in enumerate(rows):
        if row.ndim != 1:
            raise ValueError(f"rollout {i} must be a 1-D sequence of per-decision values, got shape {row.shape}")
    lengths = np.array([row.shape[0] for row in rows], dtype=np.int64)
    width = int(lengths.max()) if rows else 0
    out = np.full((len(rows), width), fill, dtype=np.float64)
    for i, row in enumerate(rows):
        out[i, : row.shape[0]] = row
    return out, lengths


def check_lengths(lengths, num_rollouts: int, num_steps: int, *, min_length: int = 1) -> np.ndarray:
    """Validate ``lengths`` against an (E, T) array; ``None`` means all rollouts are T long."""
    if lengths is None:
        if num_steps < min_length:
            raise ValueError(f"rollouts have {num_steps} steps; at least {min_length} needed")
        return np.full(num_rollouts, num_steps, dtype=np.int64)
    arr = np.asarray(lengths)
    if arr.shape != (num_rollouts,):
        raise ValueError(f"lengths must have shape ({num_rollouts},) to match the scores, got {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ValueError(f"lengths must be whole numbers of decisions, got {arr}")
    arr = arr.astype(np.int64)
    bad = np.flatnonzero((arr < min_length) | (arr > num_steps))
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"rollout {i} has length {arr[i]}, outside [{min_length}, {num_steps}] "
            f"(the padded array has {num_steps} steps)"
        )
    return arr


def step_mask(lengths: np.ndarray, num_steps: int) -> np.ndarray:
    """Boolean ``(..., T)`` mask, True where step t < length (works for batched lengths)."""
    return np.arange(num_steps) < np.asarray(lengths)[..., None]


def check_rollouts(scores, lengths=None, *, name: str = "scores", min_length: int = 1):
    """Validate a padded ``(E, T)`` score array; return (scores float64, lengths int64, mask).

    Raises ValueError for a wrong shape, an empty set, or a non-finite value inside a rollout
    (naming the rollout and step).
    """
    arr = np.asarray(scores, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a padded (rollouts, steps) array, got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty: at least one rollout is needed")
    lens = check_lengths(lengths, arr.shape[0], arr.shape[1], min_length=min_length)
    mask = step_mask(lens, arr.shape[1])
    bad = mask & ~np.isfinite(arr)
    if bad.any():
        i, t = np.argwhere(bad)[0]
        raise ValueError(
            f"{name} must be finite inside each rollout: rollout {i} has {arr[i, t]} at step {t} "
            f"(length {lens[i]}); fix the score or shorten that rollout's length"
        )
    return arr, lens, mask
