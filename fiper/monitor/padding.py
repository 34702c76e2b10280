"""Flat per-decision arrays (N,) with episode ends -> padded (E, T) rollouts, without loops."""

from __future__ import annotations

from typing import Any

import numpy as np


def episode_lengths(decision_ends: Any) -> np.ndarray:
    ends = np.asarray(decision_ends, dtype=np.int64).reshape(-1)
    lengths = np.diff(np.concatenate([[0], ends]))
    if len(ends) and lengths.min() < 1:
        raise ValueError(f"decision_ends must be strictly increasing cumulative ends, got {ends[:10]}...")
    return lengths


def to_padded(values: Any, decision_ends: Any, fill: float = np.nan) -> tuple[np.ndarray, np.ndarray]:
    """Scatter ``values`` (N,) into a NaN-padded (E, T) array plus lengths (E,)."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    lengths = episode_lengths(decision_ends)
    if lengths.sum() != values.shape[0]:
        raise ValueError(f"{values.shape[0]} per-decision values but decision_ends cover {int(lengths.sum())} decisions")
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    rows = np.repeat(np.arange(len(lengths)), lengths)
    cols = np.arange(values.shape[0]) - np.repeat(starts, lengths)
    out = np.full((len(lengths), int(lengths.max()) if len(lengths) else 0), fill)
    out[rows, cols] = values
    return out, lengths


def from_padded(padded: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Inverse of to_padded: the (N,) values in episode order."""
    return padded[np.arange(padded.shape[1]) < np.asarray(lengths)[:, None]]
