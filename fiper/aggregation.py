"""Trailing-window aggregation of failure scores, threshold ratios, and the combined alarm.

Offline, rollouts are padded ``(E, T)`` arrays with ``lengths (E,)`` (the calibration.rollouts
convention: entries at or past a rollout's length are ignored; outputs hold NaN / False there).
Online, :class:`OnlineAlarm` takes one decision at a time and matches the offline result.

  eta(t)   = sum_{j=t-w+1..t} s(j)            (partial at the start of a rollout)
  r(t)     = eta(t) / gamma(t)                (see threshold_ratio for gamma <= 0)
  combined = min_k r_k  ('and', FIPER)  |  max_k r_k ('or')  |  r ('single')   (fiper.rules)
  alarm(t) = combined(t) > 1, evaluated exactly as eta_k(t) > gamma_k(t) for all / any k
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from calibration.rollouts import check_rollouts, step_mask
from fiper.rules import RULES, get_rule

__all__ = ["RULES", "AlarmStep", "AlarmTrace", "OnlineAlarm", "WindowedSum", "check_rule", "combine", "evaluate_alarms",
           "first_alarm_index", "scalar_ratio", "threshold_ratio", "windowed_sum"]
_TINY = 1e-300


def _check_windows(windows) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(windows))
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"windows must be a positive int or a 1-D sequence of them, got {windows!r}")
    if not np.issubdtype(arr.dtype, np.integer) and not np.all(arr == np.round(arr)):
        raise ValueError(f"windows must be whole numbers of decisions, got {windows!r}")
    arr = arr.astype(np.int64)
    if arr.min() < 1:
        raise ValueError(f"windows must be >= 1 decision, got {windows!r}")
    return arr


def windowed_sum(scores, windows, lengths=None, *, name: str = "scores") -> np.ndarray:
    """Trailing-window sums of padded per-decision scores, by cumulative sums.

    ``windows`` an int gives ``(E, T)``; a sequence of W ints gives ``(W, E, T)`` in one pass.
    Steps at or past a rollout's length are NaN.
    """
    x, lens, mask = check_rollouts(scores, lengths, name=name)  # ``name`` says whose scores an error is about
    wins = _check_windows(windows)
    num_steps = x.shape[1]
    csum = np.zeros((x.shape[0], num_steps + 1))
    np.cumsum(np.where(mask, x, 0.0), axis=1, out=csum[:, 1:])
    end = np.arange(1, num_steps + 1)
    start = np.maximum(end[None, :] - wins[:, None], 0)  # (W, T)
    eta = csum[None, :, 1:] - np.moveaxis(csum[:, start], 1, 0)  # (W, E, T)
    eta = np.where(mask[None], eta, np.nan)
    return eta[0] if np.ndim(windows) == 0 else eta


class WindowedSum:
    """Online trailing-window sum with a ring buffer: O(1) amortised per step.

    The running total is re-summed exactly (math.fsum) once per lap of the buffer, so rounding
    drift never accumulates over long rollouts.
    """

    def __init__(self, window: int) -> None:
        self.window = int(_check_windows(window)[0])
        if np.ndim(window) != 0:
            raise ValueError(f"WindowedSum takes one window length, got {window!r}")
        self._buffer = [0.0] * self.window
        self.reset()

    def reset(self) -> None:
        """Start a new rollout."""
        self._buffer = [0.0] * self.window
        self._pos = 0
        self._total = 0.0
        self.steps = 0

    @property
    def value(self) -> float:
        """Current eta (0.0 before the first update)."""
        return self._total

    def update(self, score: float) -> float:
        """Add this decision's score; return eta over the last ``window`` decisions."""
        value = float(score)
        if not math.isfinite(value):
            raise ValueError(f"score at decision {self.steps} is {value}; scores must be finite")
        self._total += value - self._buffer[self._pos]
        self._buffer[self._pos] = value
        self._pos = (self._pos + 1) % self.window
        self.steps += 1
        if self._pos == 0:  # a full lap: drop accumulated rounding drift (exact re-sum)
            self._total = math.fsum(self._buffer)
        return self._total


def threshold_ratio(eta, gamma) -> np.ndarray:
    """r = eta / gamma for gamma > 0 (the published ratio); broadcasting.

    For gamma <= 0 (scores that can be zero or negative) it is 1 + (eta - gamma) / |gamma|,
    which keeps "r > 1 exactly when eta > gamma" for any sign of gamma.
    """
    eta = np.asarray(eta, dtype=np.float64)
    gamma = np.asarray(gamma, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        general = 1.0 + (eta - gamma) / np.maximum(np.abs(gamma), _TINY)
        return np.where(gamma > 0, eta / np.where(gamma > 0, gamma, 1.0), general)


def scalar_ratio(eta: float, gamma: float) -> float:
    """threshold_ratio for two Python floats, without array overhead (the online hot path)."""
    if gamma > 0:
        return eta / gamma
    return 1.0 + (eta - gamma) / max(abs(gamma), _TINY)


def check_rule(rule: str, num_indicators: int) -> str:
    """The one check of an alarm rule against the number of indicators it combines."""
    return get_rule(rule).check(num_indicators).name


def combine(values, rule: str, axis: int = 0) -> np.ndarray:
    """Combine indicators along ``axis`` with the registered rule: boolean exceedances give the
    alarm ('and': all, 'or': any), ratios give the combined ratio ('and': min, 'or': max)."""
    arr = np.asarray(values)
    r = get_rule(rule).check(arr.shape[axis])
    return r.alarm(arr, axis=axis) if arr.dtype == bool else r.ratio(arr, axis=axis)


def first_alarm_index(alarm, axis: int = -1) -> np.ndarray:
    """Index of the first True along ``axis`` (the decision of the first alarm), -1 if none."""
    arr = np.asarray(alarm, dtype=bool)
    first = np.argmax(arr, axis=axis)
    return np.where(arr.any(axis=axis), first, -1).astype(np.int64)


def _gamma_curve(threshold, num_steps: int) -> np.ndarray:
    """gamma(0..T-1) from a calibration.Threshold (``values``) or a scalar / (T,) array."""
    if hasattr(threshold, "values") and callable(threshold.values):
        return np.asarray(threshold.values(num_steps), dtype=np.float64)
    arr = np.asarray(threshold, dtype=np.float64)
    if arr.ndim == 0 or arr.shape == (num_steps,):
        return np.broadcast_to(arr, (num_steps,)).astype(np.float64)
    raise ValueError(f"threshold must be a Threshold, a scalar or a ({num_steps},) curve, got shape {arr.shape}")


@dataclass(frozen=True)
class AlarmTrace:
    """Offline alarm evaluation of E rollouts against K indicators (NaN / False past lengths)."""

    names: tuple[str, ...]
    rule: str
    lengths: np.ndarray  # (E,)
    eta: np.ndarray  # (K, E, T) windowed scores
    gamma: np.ndarray  # (K, T)
    ratios: np.ndarray  # (K, E, T)
    combined: np.ndarray  # (E, T) combined ratio
    alarm: np.ndarray  # (E, T) bool
    first_alarm: np.ndarray  # (E,) int, -1 if never
    crossed: np.ndarray  # (E, K) bool: indicators above threshold at the first alarm

    @property
    def flagged(self) -> np.ndarray:
        """(E,) True where the rollout raised an alarm at any decision."""
        return self.first_alarm >= 0

    @property
    def max_ratio(self) -> np.ndarray:
        """(E,) per-rollout maximum of the combined ratio (the AUROC score)."""
        return np.nanmax(self.combined, axis=1)

    def crossed_names(self, rollout: int) -> tuple[str, ...]:
        """Names of the indicators above threshold at that rollout's first alarm."""
        return tuple(n for n, c in zip(self.names, self.crossed[rollout]) if c)


def evaluate_alarms(
    scores: Mapping[str, np.ndarray],
    windows: Mapping[str, int],
    thresholds: Mapping[str, object],
    lengths=None,
    rule: str = "and",
) -> AlarmTrace:
    """Window each raw score, compare with its threshold, combine, and locate first alarms.

    ``scores[name]`` is a padded (E, T) array of per-decision scores (all with the same shape),
    ``windows[name]`` its window and ``thresholds[name]`` its calibration.Threshold.
    """
    names = tuple(scores)
    check_rule(rule, len(names))
    for what, mapping in (("windows", windows), ("thresholds", thresholds)):
        if set(mapping) != set(names):
            raise ValueError(f"{what} must name exactly the scores {sorted(names)}, got {sorted(mapping)}")
    shapes = {n: np.shape(scores[n]) for n in names}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"all scores must share one padded (E, T) shape, got {shapes}")
    eta = np.stack([windowed_sum(scores[n], int(windows[n]), lengths, name=f"scores of {n!r}") for n in names])
    num_steps = eta.shape[-1]
    lens = np.asarray(lengths, dtype=np.int64) if lengths is not None else np.full(eta.shape[1], num_steps)
    mask = step_mask(lens, num_steps)
    gamma = np.stack([_gamma_curve(thresholds[n], num_steps) for n in names])
    ratios = np.where(mask, threshold_ratio(eta, gamma[:, None, :]), np.nan)
    exceed = mask & (eta > gamma[:, None, :])  # NaN compares False
    alarm = combine(exceed, rule)
    first = first_alarm_index(alarm)
    at_first = np.take_along_axis(exceed, np.maximum(first, 0)[None, :, None], axis=2)[..., 0]  # (K, E)
    crossed = (at_first & (first >= 0)[None, :]).T
    return AlarmTrace(names, rule, lens, eta, gamma, ratios, combine(ratios, rule), alarm, first, crossed)


@dataclass(frozen=True)
class AlarmStep:
    """One online decision: per-indicator eta, gamma, ratio; the combined ratio and alarm."""

    step: int
    eta: dict[str, float]
    gamma: dict[str, float]
    ratio: dict[str, float]
    combined_ratio: float
    alarm: bool
    crossed: tuple[str, ...]  # indicators above their threshold at this step
    skipped: tuple[str, ...] = ()  # indicators left out of this decision (their windows hold)


class OnlineAlarm:
    """Streaming counterpart of :func:`evaluate_alarms`: one decision per :meth:`step`.

    This is the alarm rule the monitor runs in the control loop (``FailureMonitor.step``);
    tests/monitor check it against the vectorised offline grid of the evaluation.
    """

    def __init__(self, thresholds: Mapping[str, object], windows: Mapping[str, int], rule: str = "and") -> None:
        self.names = tuple(thresholds)
        self.rule = check_rule(rule, len(self.names))
        self._rule = get_rule(rule)
        if set(windows) != set(self.names):
            raise ValueError(f"windows must name exactly the thresholds {sorted(self.names)}, got {sorted(windows)}")
        self.thresholds = dict(thresholds)
        self._sums = {n: WindowedSum(int(windows[n])) for n in self.names}
        self.reset()

    def reset(self) -> None:
        """Start a new rollout."""
        for s in self._sums.values():
            s.reset()
        self.steps = 0
        self.first_alarm: int | None = None

    def _gamma(self, name: str, t: int) -> float:
        th = self.thresholds[name]
        if callable(th):
            return float(th(t))
        curve = np.atleast_1d(np.asarray(th, dtype=np.float64))
        if curve.ndim != 1 or curve.size == 0:
            raise ValueError(f"threshold {name!r} must be a Threshold, a scalar or a 1-D curve, got shape {curve.shape}")
        return float(curve[min(t, curve.size - 1)])

    def step(self, scores: Mapping[str, float], skip: tuple[str, ...] = ()) -> AlarmStep:
        """Feed this decision's raw scores; return the decision.

        Indicators named in ``skip`` take no score: their windows hold their value and the rule
        combines the others (e.g. ACE while the policy's sampling is steered).
        """
        t = self.steps
        active = [n for n in self.names if n not in skip]
        if not active:
            raise ValueError(f"decision {t}: every indicator is skipped; nothing to alarm on")
        missing = [n for n in active if n not in scores]
        if missing:
            raise ValueError(f"scores for decision {t} lack indicator(s) {missing}")
        eta = {n: (self._sums[n].update(scores[n]) if n in scores and n not in skip else self._sums[n].value) for n in self.names}
        gamma = {n: self._gamma(n, t) for n in self.names}
        ratio = {n: scalar_ratio(eta[n], gamma[n]) for n in self.names}
        above = [eta[n] > gamma[n] for n in active]
        crossed = tuple(n for n, a in zip(active, above) if a)
        alarm, combined = self._rule.decide(above, [ratio[n] for n in active])
        if alarm and self.first_alarm is None:
            self.first_alarm = t
        self.steps += 1
        return AlarmStep(t, eta, gamma, ratio, combined, alarm, crossed, tuple(n for n in self.names if n in skip))

    def hold(self) -> AlarmStep:
        """Advance one decision without scores (a fail-safe decision): windows hold, time moves on."""
        t = self.steps
        eta = {n: self._sums[n].value for n in self.names}
        gamma = {n: self._gamma(n, t) for n in self.names}
        if self.first_alarm is None:
            self.first_alarm = t
        self.steps += 1
        return AlarmStep(t, eta, gamma, {}, math.inf, True, (), self.names)
