"""Which stress cells each method catches: flagged failures and successes per (shift, severity), test split.

The metrics average over the whole test split; this table shows where a monitor's misses and false
alarms come from (e.g. failures whose cause the policy cannot observe), at one threshold type and delta.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fiper.evaluation.pipeline import TaskResult
from fiper.evaluation.plots import delta_index


@dataclass(frozen=True)
class CellDetection:
    """Test episodes of one (shift, severity) cell and, per method, how many of them alarmed."""

    shift: str
    severity: float
    failures: int
    successes: int
    flagged_failures: dict[str, int]
    flagged_successes: dict[str, int]


def cell_detection(task: TaskResult, kind: str, delta: float) -> tuple[list[CellDetection], float]:
    """Per test cell, every method's flagged failures / successes at threshold ``kind`` and the grid delta nearest ``delta``."""
    ro, test = task.rollouts, task.split.test
    d = delta_index(task.deltas, delta)
    flagged = {name: m.types[kind].test_alarms.first_alarm[0, d] >= 0 for name, m in task.methods.items() if kind in m.types}
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
    return rows, float(task.deltas[d])


def detection_markdown(rows: list[CellDetection], kind: str, delta: float) -> list[str]:
    """Markdown table: one column per method, 'flagged failures / failures · flagged successes / successes'."""
    if not rows:
        return []
    methods = list(rows[0].flagged_failures)
    lines = [f"Test episodes per cell alarmed by each method ({kind} threshold, delta={delta:g}): "
             "flagged failures / failures · flagged successes / successes.", "",
             "| shift | severity | " + " | ".join(methods) + " |", "|" + "---|" * (len(methods) + 2)]
    for r in rows:
        cells = [f"{r.flagged_failures[m]}/{r.failures} · {r.flagged_successes[m]}/{r.successes}" for m in methods]
        lines.append(f"| {r.shift} | {r.severity:g} | " + " | ".join(cells) + " |")
    return lines
