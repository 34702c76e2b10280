"""Test metrics of a chosen monitor configuration, flattened into json-able records.

One record per (task, method, threshold type, delta) plus one 'mean over delta' record (plain
means of the per-delta values: a NaN at any delta stays NaN, as docs/metrics.md asks).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fiper.evaluation.grid import CandidateAlarms
from fiper.evaluation.metrics import metric_summary
from fiper.evaluation.rollouts import RolloutSet
from fiper.monitor.padding import to_padded

MEAN = "mean"  # the 'delta' of the mean-over-delta record

# Per-delta fields in record order (after the identifying fields).
METRIC_FIELDS = (
    "tpr", "tnr", "accuracy", "dt", "twa", "auroc", "far_id", "far_id_se",
    "success_id_flag_rate", "success_ood_flag_rate", "fail_id_flag_rate", "fail_ood_flag_rate",
    "lead_fraction_before_onset", "lead_median_warning_s", "lead_median_warning_decisions", "lead_n_before_onset",
    "lead_n_timeout_flagged",
    "tp", "fn", "tn", "fp",
    "success_id_flagged", "success_ood_flagged", "fail_id_flagged", "fail_ood_flagged",
)
COUNT_FIELDS = ("n_fail", "n_succ", "max_decisions", "success_id_n", "success_ood_n", "fail_id_n", "fail_ood_n", "lead_n_with_onset",
                "lead_n_timeout")


def padded_env_steps(rollouts: RolloutSet) -> np.ndarray:
    """(E, T) env step of every decision, -1 past each episode's length."""
    table, _ = to_padded(rollouts.env_step.astype(np.float64), rollouts.decision_ends, fill=-1.0)
    return table.astype(np.int64)


def chosen_metrics(alarms: CandidateAlarms, rollouts: RolloutSet, episodes: np.ndarray, env_steps: np.ndarray, max_decisions: int) -> dict[str, Any]:
    """Section-7 metrics (arrays over the delta grid) of the single candidate in ``alarms`` on ``episodes``."""
    if len(alarms.candidates) != 1:
        raise ValueError(f"test metrics take the one chosen candidate, got {len(alarms.candidates)}")
    lengths = rollouts.lengths[episodes]
    report = metric_summary(
        alarms.first_alarm[0], alarms.max_ratio[0], rollouts.failed[episodes], lengths,
        ood=rollouts.ood[episodes], failure_step=rollouts.failure_step[episodes],
        env_steps=env_steps[episodes, : int(lengths.max())], control_period=rollouts.control_period_s,
        max_decisions=max_decisions, failure_reason=rollouts.failure_reason[episodes],
    )
    return with_far_id(report)


def with_far_id(report: dict[str, Any]) -> dict[str, Any]:
    """Add the false-alarm rate on in-distribution successes and its binomial SE to a report with the four-way split."""
    n_id = report["success_id_n"]
    far = np.asarray(report["success_id_flag_rate"], dtype=np.float64)
    report["far_id"] = far
    report["far_id_se"] = np.sqrt(far * (1.0 - far) / n_id) if n_id > 0 else np.full(far.shape, np.nan)
    return report


def _plain(value: Any) -> Any:
    """numpy scalars -> Python; NaN / inf -> None (strict json)."""
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


def metric_records(
    identity: Mapping[str, Any],
    deltas: Sequence[float],
    metrics: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """Per-delta records plus the mean-over-delta record of one (task, method, threshold type)."""
    records = []
    for i, delta in enumerate(deltas):
        rec = dict(identity, delta=float(delta), confidence=round(1.0 - float(delta), 10))
        rec.update({f: _plain(np.asarray(metrics[f])[i]) for f in METRIC_FIELDS if f in metrics})
        rec.update({f: _plain(metrics[f]) for f in COUNT_FIELDS if f in metrics})
        records.append(rec)
    mean = dict(identity, delta=MEAN, confidence=MEAN)
    mean.update({f: _plain(np.mean(np.asarray(metrics[f], dtype=np.float64))) for f in METRIC_FIELDS if f in metrics})
    mean.update({f: _plain(metrics[f]) for f in COUNT_FIELDS if f in metrics})
    records.append(mean)
    return records
