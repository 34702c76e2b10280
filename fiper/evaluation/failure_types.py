"""Detection by failure type: per failure reason, how many test failures each method flags and how early.

A timeout has no onset to warn of (its failure_step is the time limit), so its row has a TPR but no
lead; the warning columns cover physical failures only, with the definitions of ``metrics.lead_time``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from fiper.evaluation.detection import delta_index
from fiper.evaluation.findings import detection_alarms
from fiper.evaluation.metrics import TIMEOUT, lead_time, physical_onset
from fiper.evaluation.records import padded_env_steps
from fiper.evaluation.rollouts import RolloutSet

if TYPE_CHECKING:
    from fiper.evaluation.results import TaskResult

UNKNOWN = "unknown"  # a failure whose store records no failure_reason
PHYSICAL = "all physical"  # the total row over every reason but timeout


@dataclass(frozen=True)
class FailureTypeRow:
    """Test failures of one reason and, per method, their detection at the table's rows and delta."""

    reason: str
    failures: int
    with_onset: int  # of those, physical with a known onset (failure_step >= 0); 0 for timeouts
    flagged: dict[str, int]
    tpr: dict[str, float]
    before_onset: dict[str, float]  # share of with_onset alarmed strictly before the onset; NaN when with_onset is 0
    median_warning_decisions: dict[str, float]  # over those alarmed before onset
    median_warning_s: dict[str, float]  # same, in seconds (NaN when the store records no control period)


@dataclass(frozen=True)
class FailureTypeTable:
    threshold_type: str  # the rows read: 'chosen' (each method's deployable row) or one threshold type
    delta: float
    control_period_s: float
    physical_with_onset: int  # physical failures with a known onset in the whole store (every split)
    physical_with_onset_test: int  # of those, in the test split
    rows: tuple[FailureTypeRow, ...]
    method_types: dict[str, str] = field(default_factory=dict)  # each method's threshold type in those rows


def failure_reasons(rollouts: RolloutSet) -> np.ndarray:
    """(E,) failure reason of each episode, UNKNOWN for a failure without one, '' for successes."""
    reasons = np.array([r or UNKNOWN for r in rollouts.failure_reason.tolist()], dtype=object)
    return np.where(rollouts.failed, reasons, "").astype(str)


def failure_type_detection(rollouts: RolloutSet, test: np.ndarray, deltas, first_alarms: dict[str, np.ndarray],
                           kind: str, delta: float, method_types: dict[str, str] | None = None) -> FailureTypeTable:
    """Rows per failure reason of the ``test`` episodes (most common first, timeout last, then the physical
    total); ``first_alarms`` maps each method to its (n_deltas, n_test) first alarms on ``test``."""
    d = delta_index(deltas, delta)
    reasons = failure_reasons(rollouts)
    onset_all = physical_onset(rollouts.failed, rollouts.failure_step, reasons)
    test_reasons, env_steps = reasons[test], padded_env_steps(rollouts)[test]
    names, counts = np.unique(test_reasons[test_reasons != ""], return_counts=True)
    order = sorted(zip(names.tolist(), counts.tolist()), key=lambda rc: (rc[0] == TIMEOUT, -rc[1], rc[0]))
    groups = [(r, test_reasons == r) for r, _ in order]
    if any(r != TIMEOUT for r, _ in order):
        groups.append((PHYSICAL, (test_reasons != "") & (test_reasons != TIMEOUT)))
    rows = []
    for reason, members in groups:
        idx = np.flatnonzero(members)
        flagged, tpr, before, lead_d, lead_s = {}, {}, {}, {}, {}
        for name, fa in first_alarms.items():
            alarm = np.asarray(fa[d])[idx]
            lt = lead_time(alarm, np.ones(idx.size, dtype=bool), rollouts.failure_step[test][idx], env_steps[idx],
                           rollouts.control_period_s, test_reasons[idx])
            flagged[name] = int((alarm >= 0).sum())
            tpr[name] = flagged[name] / idx.size
            before[name], lead_d[name], lead_s[name] = (float(lt.fraction_before_onset), float(lt.median_warning_decisions),
                                                        float(lt.median_warning_s))
        with_onset = int((onset_all[test][idx] >= 0).sum())
        rows.append(FailureTypeRow(reason, int(idx.size), with_onset, flagged, tpr, before, lead_d, lead_s))
    return FailureTypeTable(kind, float(deltas[d]), rollouts.control_period_s, int((onset_all >= 0).sum()),
                            int((onset_all[test] >= 0).sum()), tuple(rows), dict(method_types or {}))


def task_failure_types(task: TaskResult) -> FailureTypeTable:
    """The table of one evaluated task: each method's deployable row at the delta of its detection-per-cell table."""
    label, first_alarms, types = detection_alarms(task)
    return failure_type_detection(task.rollouts, task.split.test, task.deltas, first_alarms, label,
                                  task.findings.detection.delta, types)
