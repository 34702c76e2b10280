"""Which stress cells each method catches: flagged failures and successes per (shift, severity), test split.

The metrics average over the whole test split; this table shows where a monitor's misses and false
alarms come from (e.g. failures whose cause the policy cannot observe), at one delta, each method at
the threshold type of the row it would deploy (its type chosen on validation).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fiper.evaluation.rollouts import RolloutSet


def delta_index(deltas, delta: float) -> int:
    """Index of the grid delta nearest to ``delta``."""
    return int(np.argmin(np.abs(np.asarray(deltas) - float(delta))))


@dataclass(frozen=True)
class CellDetection:
    """Test episodes of one (shift, severity) cell and, per method, how many of them alarmed."""

    shift: str
    severity: float
    failures: int
    successes: int
    flagged_failures: dict[str, int]
    flagged_successes: dict[str, int]


@dataclass(frozen=True)
class DetectionTable:
    """Cell detection of every method at one grid delta; ``threshold_type`` names the rows read ('chosen': each
    method's deployable row) and ``method_types`` each method's threshold type there."""

    threshold_type: str
    delta: float
    rows: tuple[CellDetection, ...]
    method_types: dict[str, str] = field(default_factory=dict)


def cell_detection(rollouts: RolloutSet, test: np.ndarray, deltas, first_alarms: dict[str, np.ndarray], kind: str, delta: float,
                   method_types: dict[str, str] | None = None) -> DetectionTable:
    """Per test cell, every method's flagged failures / successes at the grid delta nearest ``delta``;
    ``first_alarms`` maps each method to its (n_deltas, n_test) first alarms of the rows named ``kind``."""
    ro = rollouts
    d = delta_index(deltas, delta)
    flagged = {name: fa[d] >= 0 for name, fa in first_alarms.items()}
    shift, severity, failed = ro.shift[test], ro.severity[test], ro.failed[test]
    keys = sorted({(str(s), round(float(v), 6)) for s, v in zip(shift, severity)}, key=lambda k: (k[0] != "none", k))
    rows = []
    for s, v in keys:
        cell = (shift == s) & np.isclose(severity, v)
        rows.append(CellDetection(
            s, v, int((cell & failed).sum()), int((cell & ~failed).sum()),
            {n: int((f & cell & failed).sum()) for n, f in flagged.items()},
            {n: int((f & cell & ~failed).sum()) for n, f in flagged.items()},
        ))
    return DetectionTable(kind, float(deltas[d]), tuple(rows), dict(method_types or {}))
