"""A fitted threshold gamma(t): a curve over decision steps plus what it was fitted for."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from calibration.quantile import check_delta

#: kind -> whether the finite-sample false-alarm guarantee holds for that construction.
THRESHOLD_KINDS: dict[str, bool] = {"constant": True, "band": True, "time_varying": False}


def _freeze(value: Any) -> Any:
    """Copy array-like params into read-only numpy arrays; keep scalars and strings."""
    if isinstance(value, (list, tuple, np.ndarray)):
        arr = np.array(value)
        arr.setflags(write=False)
        return arr
    if isinstance(value, np.generic):
        return value.item()
    return value


@dataclass(frozen=True, eq=False)
class Threshold:
    """gamma(t) for any decision step t >= 0.

    ``curve[t]`` is gamma at step t for t < len(curve); later steps use ``curve[-1]`` (thresholds
    extend with their last value past the longest calibration rollout). ``guaranteed`` says
    whether P(any false alarm on a new exchangeable successful rollout) <= delta holds.
    ``params`` holds kind-specific diagnostics (band: mean, modulation, height, split sizes).
    """

    kind: str
    delta: float
    curve: np.ndarray
    num_calibration: int
    guaranteed: bool
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in THRESHOLD_KINDS:
            raise ValueError(f"unknown threshold kind {self.kind!r}; expected one of {sorted(THRESHOLD_KINDS)}")
        object.__setattr__(self, "delta", check_delta(self.delta))
        curve = np.array(self.curve, dtype=np.float64).reshape(-1) if np.ndim(self.curve) <= 1 else None
        if curve is None or curve.size == 0:
            raise ValueError(f"threshold curve must be a non-empty 1-D array, got shape {np.shape(self.curve)}")
        if not np.all(np.isfinite(curve)):
            raise ValueError(f"threshold curve must be finite, got non-finite value at step {int(np.argmin(np.isfinite(curve)))}")
        curve.setflags(write=False)
        object.__setattr__(self, "curve", curve)
        if int(self.num_calibration) < 1:
            raise ValueError(f"num_calibration must be >= 1, got {self.num_calibration}")
        object.__setattr__(self, "num_calibration", int(self.num_calibration))
        object.__setattr__(self, "guaranteed", bool(self.guaranteed))
        object.__setattr__(self, "params", {str(k): _freeze(v) for k, v in dict(self.params).items()})

    @property
    def horizon(self) -> int:
        """Number of steps with their own value; gamma is constant from ``horizon - 1`` on."""
        return int(self.curve.shape[0])

    def __call__(self, t):
        """gamma(t) for an int step (returns float) or an integer array of steps (same shape)."""
        if isinstance(t, (int, np.integer)) and not isinstance(t, bool):  # online fast path
            if t < 0:
                raise ValueError(f"threshold steps must be >= 0, got {int(t)}")
            return float(self.curve[min(int(t), self.horizon - 1)])
        steps = np.asarray(t)
        if steps.size and not np.issubdtype(steps.dtype, np.integer):
            if not np.all(np.isfinite(steps)) or not np.all(steps == np.floor(steps)):
                raise ValueError(f"threshold steps must be whole decision indices, got {t!r}")
        steps = steps.astype(np.int64)
        if steps.size and steps.min() < 0:
            raise ValueError(f"threshold steps must be >= 0, got {int(steps.min())}")
        out = self.curve[np.minimum(steps, self.horizon - 1)]
        return float(out) if out.ndim == 0 else out

    def values(self, num_steps: int) -> np.ndarray:
        """gamma(0 .. num_steps-1) as a new float array."""
        if int(num_steps) < 0:
            raise ValueError(f"num_steps must be >= 0, got {num_steps}")
        return np.array(self(np.arange(int(num_steps))), dtype=np.float64).reshape(-1)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Threshold):
            return NotImplemented
        if (self.kind, self.delta, self.num_calibration, self.guaranteed) != (
            other.kind, other.delta, other.num_calibration, other.guaranteed
        ) or not np.array_equal(self.curve, other.curve):
            return False
        if self.params.keys() != other.params.keys():
            return False
        return all(np.array_equal(np.asarray(self.params[k]), np.asarray(other.params[k])) for k in self.params)

    __hash__ = None  # mutable-looking content; compare with ==

    def __repr__(self) -> str:
        split = self.params.get("num_d2")  # band and joint: only the D2 rollouts count toward the level
        return (
            f"Threshold(kind={self.kind!r}, delta={self.delta:g}, M={self.num_calibration}, "
            + (f"D2={int(split)}, " if split is not None else "")
            + ("joint=True, " if self.params.get("joint") else "")
            + f"guaranteed={self.guaranteed}, horizon={self.horizon}, "
            f"range=[{self.curve.min():.4g}, {self.curve.max():.4g}])"
        )
