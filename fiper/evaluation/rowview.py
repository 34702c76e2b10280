"""Rows of several arrays (zarr or numpy) concatenated along axis 0 without loading them.

Sample batches of many runs can exceed memory (B=256 chunks per decision); scores read them in
row slices (``score_offline``) and fit subsets by row index, which is all this view supports.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fiper.scores.inputs import LazyRows

IN_MEMORY_BYTES = 64 << 20  # sample batches up to 64 MiB are held in memory; larger ones stay in the stores


class RowView(LazyRows):
    """Read-only concatenation of the leading ``rows`` of each part (a zarr or numpy array)."""

    def __init__(self, parts: Sequence[tuple[Any, int]]):
        if not parts:
            raise ValueError("RowView needs at least one (array, rows) part")
        shapes = {tuple(a.shape[1:]) for a, _ in parts}
        if len(shapes) != 1:
            raise ValueError(f"RowView parts disagree on the row shape: {sorted(shapes)}")
        self.parts = [(a, int(n)) for a, n in parts]
        self.bounds = np.cumsum([0] + [n for _, n in self.parts])
        self.shape = (int(self.bounds[-1]), *shapes.pop())
        self.dtype = np.dtype(self.parts[0][0].dtype)

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, slice):
            start, stop, step = key.indices(self.shape[0])
            if step != 1:
                raise IndexError("RowView supports contiguous slices (step 1) and integer row arrays only")
            pieces = []
            for (arr, _), lo_b, hi_b in zip(self.parts, self.bounds[:-1], self.bounds[1:]):
                lo, hi = max(start, lo_b), min(stop, hi_b)
                if lo < hi:
                    pieces.append(np.asarray(arr[lo - lo_b : hi - lo_b]))
            return np.concatenate(pieces) if pieces else np.empty((0, *self.shape[1:]), self.dtype)
        rows = np.asarray(key)
        if rows.ndim != 1 or (rows.size and rows.dtype.kind not in "iu"):
            raise IndexError(f"RowView takes a slice or a 1-D integer row array, got {key!r:.60}")
        if rows.size and (rows.min() < 0 or rows.max() >= self.shape[0]):
            raise IndexError(f"rows outside [0, {self.shape[0]})")
        out = np.empty((rows.size, *self.shape[1:]), self.dtype)
        part = np.searchsorted(self.bounds, rows, side="right") - 1
        for i in np.unique(part):  # one gather per part (a handful of stores), not per row
            sel = part == i
            arr = self.parts[i][0]
            local = rows[sel] - self.bounds[i]
            out[sel] = arr.oindex[local] if hasattr(arr, "oindex") else np.asarray(arr)[local]
        return out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype)


def concat_rows(parts: Sequence[Any]) -> np.ndarray | RowView:
    """Concatenate numpy arrays / RowViews; in memory when the result fits in IN_MEMORY_BYTES."""
    flat: list[tuple[Any, int]] = []
    for p in parts:
        flat.extend(p.parts if isinstance(p, RowView) else [(p, p.shape[0])])
    view = RowView(flat)
    return view[:] if view.nbytes <= IN_MEMORY_BYTES else view
