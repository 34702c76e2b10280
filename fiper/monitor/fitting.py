"""Fit a FailureMonitor from a MonitorSpec (or the spec's fields given as keywords)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fiper.monitor.identity import PolicyIdentity
from fiper.monitor.monitor import FailureMonitor
from fiper.monitor.spec import MonitorSpec, fiper_spec
from fiper.scores.base import ScoreFitData


def fit_monitor(data: ScoreFitData, identity: PolicyIdentity, spec: MonitorSpec | Mapping[str, Any] | None = None,
                **fields: Any) -> FailureMonitor:
    """Fit every score of ``spec`` on ``data``: ``fit_monitor(data, identity, scores=..., windows=..., rule=...)``
    builds the spec from keywords; neither gives FIPER's default (RND-OE AND ACE, windows 5).

    The returned monitor is not calibrated yet: call ``monitor.calibrate`` on the scores of
    successful rollouts disjoint from ``data``.
    """
    if spec is not None and fields:
        raise ValueError(f"give a MonitorSpec or its fields {sorted(fields)}, not both")
    spec = MonitorSpec.of(spec if spec is not None else ({k: v for k, v in fields.items() if v is not None} or fiper_spec()))
    return FailureMonitor.from_spec(spec, data, identity)
