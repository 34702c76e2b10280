"""Build a FailureMonitor from a score specification and fit its score models."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fiper.monitor.identity import PolicyIdentity
from fiper.monitor.monitor import FailureMonitor
from fiper.scores.base import ScoreFitData
from fiper.scores.registry import make_score

DEFAULT_SCORES: dict[str, dict[str, Any]] = {"rnd_oe": {"score": "rnd_oe"}, "ace": {"score": "ace"}}


def fit_monitor(
    data: ScoreFitData,
    identity: PolicyIdentity,
    *,
    scores: Mapping[str, Mapping[str, Any]] | None = None,
    windows: Mapping[str, int] | None = None,
    rule: str = "and",
    default_window: int = 5,
) -> FailureMonitor:
    """Fit every score of ``scores`` ({indicator name: {'score': registry name, **params}}) on ``data``.

    The returned monitor is not calibrated yet: call ``monitor.calibrate`` on the scores of
    successful rollouts disjoint from ``data``.
    """
    scores = dict(scores or DEFAULT_SCORES)
    fitted = {}
    for name, spec in scores.items():
        spec = dict(spec)
        kind = spec.pop("score", name)
        fitted[name] = make_score(kind, **spec).fit(data)
    windows = {n: int((windows or {}).get(n, default_window)) for n in fitted}
    return FailureMonitor(fitted, identity, windows=windows, rule=rule)
