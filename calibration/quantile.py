"""Finite-sample corrected (split-conformal) quantiles.

With M exchangeable calibration values, the ceil((M+1)(1-delta))-th smallest value q satisfies
P(new value <= q) >= 1 - delta. A plain ``np.quantile(values, 1 - delta)`` does not.
"""

from __future__ import annotations

import math

import numpy as np

from calibration.errors import InsufficientCalibrationError

# (M+1)(1-delta) is computed in floating point; a product that lands a hair above an integer
# (e.g. 9.000000000000002) must not push the rank up by one.
_RANK_TOLERANCE = 1e-9


def check_delta(delta: float) -> float:
    """Return delta as a float, or raise ValueError unless 0 < delta < 1."""
    try:
        value = float(delta)
    except (TypeError, ValueError):
        raise ValueError(f"delta must be a number in (0, 1), got {delta!r}") from None
    if not (0.0 < value < 1.0):
        raise ValueError(f"delta must lie strictly between 0 and 1, got {delta!r}")
    return value


def conformal_rank(num_values: int, delta: float) -> int:
    """The 1-based rank ceil((M+1)(1-delta)) of the corrected quantile; may exceed M."""
    delta = check_delta(delta)
    if num_values < 0:
        raise ValueError(f"num_values must be >= 0, got {num_values}")
    return max(1, math.ceil((num_values + 1) * (1.0 - delta) - _RANK_TOLERANCE))


def min_calibration_size(delta: float) -> int:
    """Smallest M for which the corrected (1-delta) quantile exists (about 1/delta - 1)."""
    delta = check_delta(delta)
    m = max(1, math.floor(1.0 / delta - 1.0) - 1)
    while conformal_rank(m, delta) > m:
        m += 1
    return m


def insufficient_message(num_values: int, delta: float, what: str = "calibration rollouts") -> str:
    """Explain an unattainable level: names M, delta and the minimum M needed."""
    need = min_calibration_size(delta)
    return (
        f"delta={delta:g} is unattainable with M={num_values} {what}: the corrected quantile needs "
        f"rank ceil((M+1)(1-delta))={conformal_rank(num_values, delta)} > M. Use at least "
        f"{need} {what} for delta={delta:g}, or raise delta to at least {1.0 / (num_values + 1):.4g}."
    )


def conformal_quantile(values, delta, axis: int = -1) -> np.ndarray | float:
    """The ceil((M+1)(1-delta))-th smallest of the M values along ``axis``.

    ``values`` may carry leading batch dimensions (one quantile per batch element). ``delta`` may
    be a scalar (result has the batch shape) or a 1-D grid (result has shape (G, *batch)).
    Raises InsufficientCalibrationError when the rank exceeds M, ValueError on empty or
    non-finite input.
    """
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 0:
        raise ValueError("values must be an array of calibration values, got a scalar")
    arr = np.moveaxis(arr, axis, -1)
    num = arr.shape[-1]
    if num == 0:
        raise ValueError("conformal_quantile needs at least one calibration value, got none")
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"calibration values must be finite; found {arr[tuple(bad)]} at index {tuple(bad.tolist())}")
    try:
        deltas = np.atleast_1d(np.asarray(delta, dtype=np.float64))
    except (TypeError, ValueError):
        raise ValueError(f"delta must be a number in (0, 1) or a 1-D grid of them, got {delta!r}") from None
    if deltas.ndim != 1:
        raise ValueError(f"delta must be a scalar or a 1-D grid, got shape {deltas.shape}")
    ranks = []
    for d in deltas:
        k = conformal_rank(num, d)
        if k > num:
            raise InsufficientCalibrationError(insufficient_message(num, float(d)))
        ranks.append(k - 1)
    ordered = np.sort(arr, axis=-1)
    out = np.moveaxis(ordered[..., ranks], -1, 0)  # (G, *batch)
    if np.ndim(delta) == 0:
        out = out[0]
        return float(out) if out.ndim == 0 else out
    return out
