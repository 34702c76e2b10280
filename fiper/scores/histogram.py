"""Histogram entropy of many small point sets at once (numpy): the cell counting behind ACE.

Every set's points are binned on its own grid, their cell ids packed into one key, the keys of each
set sorted, and runs of equal keys counted: a whole store is one sort and a few array passes, and
one decision runs the very same code on one set of sets, so online and offline agree bit for bit.
ACE runs this path only when numba is not importable (or ``FIPER_ACE_KERNEL=numpy``); otherwise its
compiled kernel, ``histogram_kernel.py``, gives the same cells and entropies to 1e-12.
"""

from __future__ import annotations

import functools
import math

import numpy as np

_EXACT = 2.0**53  # float64 holds every integer below this exactly


def grid_cells(points: np.ndarray, cell_width: np.ndarray, margin: float) -> tuple[np.ndarray, np.ndarray]:
    """Cell ids of points (B, d, M) float64, M sets of B points, in place -> (cells, top (d, M)).

    Each set's grid origin is its minimum minus ``margin`` times its spread, so ids are >= 0;
    ``top`` is each set's largest id (the id of its maximum, by monotone rounding).
    """
    lo, hi = np.minimum.reduce(points, axis=0), np.maximum.reduce(points, axis=0)
    origin = lo - margin * (hi - lo)
    width = np.asarray(cell_width, dtype=np.float64)[:, None]
    points -= origin
    points /= width
    np.floor(points, out=points)
    return points, np.floor((hi - origin) / width)


def new_cell_mask(cells: np.ndarray, top: np.ndarray) -> np.ndarray:
    """(M, B) bool: with each set's B cell ids (cells (B, d, M) >= 0) in sorted order, True where a new cell starts."""
    b, d, m = cells.shape
    radix = top.max(axis=1) + 1 if m else np.ones(d)
    new = np.empty((m, b), dtype=bool)
    new[:, 0] = True
    if math.prod(radix.tolist()) < _EXACT:  # one exact float64 key per point
        key = cells[:, 0].copy()
        stride = 1.0
        for k in range(1, d):
            stride *= radix[k - 1]
            key += cells[:, k] * stride
        ranked = np.ascontiguousarray(key.T)  # (M, B)
        ranked.sort(axis=1)
        np.not_equal(ranked[:, 1:], ranked[:, :-1], out=new[:, 1:])
    else:  # ids too large to pack: sort points lexicographically within each set
        per_set = cells.transpose(2, 0, 1).reshape(m * b, d)
        order = np.lexsort((*per_set.T[::-1], np.repeat(np.arange(m), b)))
        ranked = per_set[order].reshape(m, b, d)
        np.any(ranked[:, 1:] != ranked[:, :-1], axis=-1, out=new[:, 1:])
    return new


def entropy_bits(new: np.ndarray, group: int = 1) -> np.ndarray:
    """Summed entropy in bits of every ``group`` consecutive sets, from ``new_cell_mask`` (M, B) -> (M // group,).

    H = -sum_cells (c/B) log2(c/B), c the run lengths of equal keys; a single cell gives exactly 0.
    """
    m, b = new.shape
    if m == 0:
        return np.zeros(0)
    starts = np.flatnonzero(new)
    counts = np.empty_like(starts)
    np.subtract(starts[1:], starts[:-1], out=counts[:-1])
    counts[-1] = new.size - starts[-1]
    first = np.searchsorted(starts, np.arange(0, new.size, group * b))  # every set opens with a run
    return np.add.reduceat(entropy_terms(b)[counts], first)


@functools.lru_cache(maxsize=16)
def entropy_terms(b: int) -> np.ndarray:
    """-(c/B) log2(c/B) for run lengths c = 0..B (0 for c = 0 and c = B)."""
    p = np.arange(b + 1) / b
    table = np.zeros(b + 1)
    table[1:] = -p[1:] * np.log2(p[1:])
    table.flags.writeable = False
    return table


def histogram_entropy_bits(cells: np.ndarray) -> np.ndarray:
    """Entropy in bits of the empirical distribution of integer cell ids: cells (M, B, d) -> (M,)."""
    cells = np.asarray(cells, dtype=np.float64)
    m, b, d = cells.shape
    cells = (cells - cells.min(axis=1, keepdims=True)).transpose(1, 2, 0)  # (B, d, M), ids >= 0
    return entropy_bits(new_cell_mask(cells, cells.max(axis=0)))
