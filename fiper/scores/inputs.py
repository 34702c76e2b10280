"""Validation and conversion of the per-decision inputs every score reads (embedding, sample batch)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor


def as_tensor(owner: str, what: str, value: Any, *, device: torch.device, dtype: torch.dtype) -> Tensor:
    """``value`` (tensor, numpy or zarr rows) as a ``dtype`` tensor on ``device``; non-numeric input is refused."""
    if isinstance(value, Tensor):
        t = value
    else:
        arr = np.asarray(value)
        if arr.dtype.kind not in "fiub":
            raise ValueError(f"{owner}: {what} must be numeric, got dtype {arr.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.is_complex() or t.dtype == torch.bool:
        raise ValueError(f"{owner}: {what} must be real-valued, got dtype {t.dtype}")
    return t.to(device=device, dtype=dtype)


def host_array(value: Any) -> np.ndarray:
    """``value`` as a host numpy array with its dtype (a tensor from any device; bf16, which numpy
    lacks, widened exactly to float32)."""
    if isinstance(value, Tensor):
        value = value.detach()
        return (value.float() if value.dtype == torch.bfloat16 else value).cpu().numpy()
    return np.asarray(value)


def as_array(owner: str, what: str, value: Any, *, dtype: Any = None) -> np.ndarray:
    """``value`` as a host numpy array (a tensor is copied from its device; a CPU tensor is shared)."""
    if isinstance(value, Tensor):
        if value.is_complex() or value.dtype == torch.bool:
            raise ValueError(f"{owner}: {what} must be real-valued, got dtype {value.dtype}")
        arr = host_array(value)
    else:
        arr = np.asarray(value)
        if arr.dtype.kind not in "fiu":
            raise ValueError(f"{owner}: {what} must be numeric, got dtype {arr.dtype}")
    return arr if dtype is None else arr.astype(dtype, copy=False)


def check_shape(owner: str, what: str, t: Tensor, expected: Sequence[int | None]) -> None:
    """Raise ValueError naming both shapes unless ``t.shape`` matches ``expected`` (None = any size)."""
    shape = tuple(t.shape)
    if len(shape) != len(expected) or any(e is not None and s != e for s, e in zip(shape, expected)):
        raise ValueError(
            f"{owner}: {what} has shape {_fmt(shape)} but the score expects {_fmt(expected)}; "
            "pass the same embedding / sample-batch layout the score was fitted on (or refit it)"
        )


def _fmt(shape: Sequence[int | None]) -> str:
    """A shape as '(N, 6, 5, 3)' ('N' for any size), '(8,)' for one entry."""
    parts = ["N" if s is None else str(s) for s in shape]
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


_NUMPY_FLOATS = (torch.float16, torch.float32, torch.float64)


def check_finite(owner: str, what: str, t: Tensor | np.ndarray) -> None:
    """Raise ValueError if ``t`` (tensor or array) holds NaN or inf (the monitor turns this into an alarm)."""
    if isinstance(t, Tensor) and t.device.type == "cpu" and t.dtype in _NUMPY_FLOATS:
        t = t.detach().numpy()  # shared memory; numpy's isfinite is ~40x faster than torch's on one CPU thread
    finite = torch.isfinite if isinstance(t, Tensor) else np.isfinite
    if not bool(finite(t).all()):
        bad = int((~finite(t)).sum())
        raise ValueError(f"{owner}: {what} of shape {tuple(t.shape)} contains {bad} non-finite values (NaN or inf)")


def check_scores(owner: str, scores: Any, n_decisions: int) -> np.ndarray:
    """A score's output for ``n_decisions`` decisions as float64 (n,), or a ValueError naming the shape it
    returned: a (1,) or (n, 1) output would otherwise broadcast into, or fail to fill, the (n,) result."""
    if isinstance(scores, Tensor):
        scores = scores.detach().double().cpu().numpy()
    out = np.asarray(scores, dtype=np.float64)
    if out.shape != (n_decisions,):
        raise ValueError(f"{owner}: the score returned shape {out.shape} for {n_decisions} decisions; it must return one "
                         f"number per decision, shape ({n_decisions},) (fix its _score or score_offline)")
    return out


def check_decision_ends(owner: str, decision_ends: Any, n_decisions: int) -> np.ndarray:
    """``decision_ends`` (E,) as int64: non-decreasing cumulative ends whose last entry is ``n_decisions``."""
    ends = np.asarray(decision_ends)
    if ends.ndim != 1 or (ends.size and ends.dtype.kind not in "iu"):
        raise ValueError(f"{owner}: decision_ends must be a 1-D integer array (E,), got shape {ends.shape} dtype {ends.dtype}")
    ends = ends.astype(np.int64)
    if ends.size == 0:
        if n_decisions:
            raise ValueError(f"{owner}: decision_ends is empty but {n_decisions} decisions were given")
        return ends
    if ends[0] < 0 or np.any(np.diff(ends) < 0):
        raise ValueError(f"{owner}: decision_ends must be non-negative and non-decreasing (cumulative ends), got {ends[:8]}...")
    if ends[-1] != n_decisions:
        raise ValueError(
            f"{owner}: decision_ends ends at {int(ends[-1])} but {n_decisions} decisions were given; "
            "pass meta/decision_ends of the same store (cumulative, last entry = number of decisions)"
        )
    return ends


def episode_starts(decision_ends: np.ndarray, n_decisions: int) -> np.ndarray:
    """Boolean mask (N,): True at the first decision of every episode."""
    starts = np.zeros(n_decisions, dtype=bool)
    first = np.concatenate([[0], decision_ends[:-1]]) if decision_ends.size else np.zeros(0, dtype=np.int64)
    first = first[first < n_decisions]
    starts[first] = True
    return starts


def index_in_episode(decision_ends: np.ndarray, n_decisions: int) -> np.ndarray:
    """(N,) float64: each decision's index within its episode (0 at its first decision)."""
    first = np.flatnonzero(episode_starts(decision_ends, n_decisions))
    index = np.arange(n_decisions, dtype=np.float64)
    return index - np.repeat(index[first], np.diff(np.append(first, n_decisions))) if n_decisions else index


def chunks(n: int, size: int) -> Iterator[slice]:
    """Consecutive slices of at most ``size`` rows covering range(n)."""
    size = max(1, int(size))
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


READ_BLOCK_BYTES = 64 << 20  # stored bytes read at once when decisions are streamed from a store


def row_nbytes(source: Any) -> int:
    """Bytes of one row (decision) of an array-like with ``shape`` and ``dtype``."""
    item = torch.empty((), dtype=source.dtype).element_size() if isinstance(source, Tensor) else np.dtype(source.dtype).itemsize
    return max(1, int(np.prod(source.shape[1:], dtype=np.int64)) * item)


def read_rows(source: Any, rows: np.ndarray) -> np.ndarray:
    """Rows ``rows`` of ``source`` (numpy, zarr, RowView) in order, each contiguous run read as one slice."""
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size == 0:
        return np.empty((0, *source.shape[1:]), dtype=source.dtype)
    runs = np.split(rows, np.flatnonzero(np.diff(rows) != 1) + 1)
    pieces = [np.asarray(source[int(r[0]) : int(r[-1]) + 1]) for r in runs]
    return pieces[0].copy() if len(pieces) == 1 else np.concatenate(pieces)


class LazyRows:
    """What numpy-like row views share: ``shape`` and ``dtype`` set by the subclass, rows read on slicing."""

    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]


class RowSubset(LazyRows):
    """The rows ``rows`` of a row-sliceable source (a zarr array, a RowView, numpy), read only when sliced.

    Fit data of a store is a subset of its decisions; holding it as a view keeps the B x H x A
    sample batches on disk. Sequential slices are served from one read-ahead block of at most
    ``block_bytes`` stored bytes, so a consumer that walks the rows in small chunks (a score's
    offline loop) decompresses each stored chunk about once.
    """

    def __init__(self, source: Any, rows: Any = None, *, block_bytes: int | None = None):
        n = int(source.shape[0])
        self.source = source
        self.rows = np.arange(n, dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64).reshape(-1)
        if self.rows.size and (self.rows.min() < 0 or self.rows.max() >= n):
            raise IndexError(f"RowSubset: rows outside [0, {n}) of a source with {n} rows")
        self.shape = (int(self.rows.size), *(int(s) for s in source.shape[1:]))
        self.dtype = np.dtype(source.dtype)
        self.block_rows = max(1, int(READ_BLOCK_BYTES if block_bytes is None else block_bytes) // row_nbytes(source))
        self._block: tuple[int, int, np.ndarray] | None = None  # (start, stop, rows) of the read-ahead block


    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):  # one row, as numpy gives it
            i = int(key) + (self.shape[0] if key < 0 else 0)
            if not 0 <= i < self.shape[0]:
                raise IndexError(f"RowSubset: row {int(key)} outside a view of {self.shape[0]} rows")
            return self[i : i + 1][0]
        if not isinstance(key, slice):
            rows = np.asarray(key)
            if rows.ndim != 1 or (rows.size and rows.dtype.kind not in "iu"):
                raise IndexError(f"RowSubset takes a row, a slice or a 1-D integer row array, got {key!r:.60}")
            return read_rows(self.source, self.rows[rows])
        start, stop, step = key.indices(self.shape[0])
        if step != 1:
            raise IndexError("RowSubset supports rows, contiguous slices (step 1) and integer row arrays only")
        stop = max(start, stop)
        if stop - start >= self.block_rows:
            return read_rows(self.source, self.rows[start:stop])
        block = self._block
        if block is None or not block[0] <= start or not stop <= block[1]:
            end = min(self.shape[0], start + self.block_rows)
            block = self._block = (start, end, read_rows(self.source, self.rows[start:end]))
        return block[2][start - block[0] : stop - block[0]].copy()

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = read_rows(self.source, self.rows)
        return out if dtype is None else out.astype(dtype)


class FitRows:
    """A score's fit sample batches, converted and checked chunk by chunk instead of all at once.

    Scores that need only a summary of the batches (ACE's ranges, RND-A's moments and a few
    samples per decision, nothing for STAC) set ``ScoreBase.streams_fit_samples`` and read
    them through ``chunks``; peak memory is then one chunk, whatever the number of decisions.
    """

    def __init__(self, owner: str, source: Any, convert: Any):
        self.owner, self.source, self._convert = owner, source, convert
        self.shape = tuple(int(s) for s in source.shape)
        self.checked = False  # True once every row has been read and found finite

    def __len__(self) -> int:
        return self.shape[0]

    def chunks(self, rows: int) -> Iterator[tuple[slice, Any]]:
        """(row slice, converted chunk) over all rows in order, each chunk checked to be finite."""
        for sl in chunks(self.shape[0], rows):
            chunk = self._convert(self.source[sl])
            try:
                check_finite(self.owner, "fit samples", chunk)
            except ValueError as err:
                raise ValueError(f"{err} (decisions {sl.start}..{sl.stop - 1} of the {self.shape[0]} fit decisions); "
                                 "fit on finite sample batches (drop the damaged episodes)") from None
            yield sl, chunk
        self.checked = True

    def check_all(self, rows: int) -> None:
        """Read every row once to refuse non-finite values, unless a full ``chunks`` pass already did."""
        if not self.checked:
            for _ in self.chunks(rows):
                pass
