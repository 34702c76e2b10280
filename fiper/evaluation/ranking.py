"""Rank-based AUROC (Mann-Whitney U with average ranks for ties), batched, no sklearn."""

from __future__ import annotations

import numpy as np


def average_ranks(values, axis: int = -1) -> np.ndarray:
    """1-based ranks along ``axis``; tied values share the mean of the ranks they span."""
    x = np.moveaxis(np.asarray(values, dtype=np.float64), axis, -1)
    n = x.shape[-1]
    order = np.argsort(x, axis=-1, kind="stable")
    xs = np.take_along_axis(x, order, axis=-1)
    idx = np.broadcast_to(np.arange(n), xs.shape)
    starts = np.ones(xs.shape, dtype=bool)
    starts[..., 1:] = xs[..., 1:] != xs[..., :-1]
    ends = np.ones(xs.shape, dtype=bool)
    ends[..., :-1] = starts[..., 1:]
    first = np.maximum.accumulate(np.where(starts, idx, 0), axis=-1)
    last = np.flip(np.minimum.accumulate(np.flip(np.where(ends, idx, n), axis=-1), axis=-1), axis=-1)
    sorted_ranks = (first + last) / 2.0 + 1.0
    ranks = np.empty_like(sorted_ranks)
    np.put_along_axis(ranks, order, sorted_ranks, axis=-1)
    return np.moveaxis(ranks, -1, axis)


def auroc(scores, positive) -> np.ndarray | float:
    """P(score of a random positive > that of a random negative) + 1/2 P(tie).

    ``scores`` (..., E) (e.g. per-rollout maximum ratio, one row per delta), ``positive`` (E,)
    bool (failures). NaN when there are no positives or no negatives. Infinite scores are
    ranked normally; NaN scores are an error.
    """
    s = np.asarray(scores, dtype=np.float64)
    pos = np.asarray(positive, dtype=bool)
    if s.ndim == 0 or s.shape[-1] != pos.shape[0] or pos.ndim != 1:
        raise ValueError(f"scores (..., E) and labels (E,) disagree: {s.shape} vs {pos.shape}")
    if np.isnan(s).any():
        raise ValueError("AUROC scores contain NaN; every rollout needs a defined score (length >= 1)")
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        out = np.full(s.shape[:-1], np.nan)
    else:
        rank_sum = (average_ranks(s) * pos).sum(axis=-1)
        out = (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)
    return float(out) if np.ndim(out) == 0 else out
