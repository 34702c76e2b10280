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


def chunks(n: int, size: int) -> Iterator[slice]:
    """Consecutive slices of at most ``size`` rows covering range(n)."""
    size = max(1, int(size))
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))
