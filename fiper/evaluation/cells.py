"""Rollouts per stress cell (shift, severity): the four kinds, live alarms and failure reasons.

Answers "what did the sweep produce?" before any monitor is evaluated; the report shows it per task
(fiper.evaluation.render.tables_md.cells_markdown).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from fiper.evaluation.metrics import alarmed_before_onset, physical_onset
from fiper.evaluation.rollouts import RolloutSet


@dataclass(frozen=True)
class CellCounts:
    """One (shift, severity) cell: episode counts; live-alarm counts are None when no alarm was recorded."""

    shift: str
    severity: float
    episodes: int
    success: int
    failure: int
    live_alarm: int | None
    alarmed_failures: int | None
    alarm_before_onset: int | None  # physical failures alarmed strictly before their onset (metrics.alarmed_before_onset)
    reasons: tuple[tuple[str, int], ...]  # failure reasons among failures, most common first


def cell_counts(ro: RolloutSet) -> list[CellCounts]:
    """Counts per (shift, severity), in distribution first, then by shift name and severity."""
    recorded = bool((ro.live_alarm_step >= 0).any())
    alarmed = ro.live_alarm_step >= 0
    before = alarmed_before_onset(ro.live_alarm_step, physical_onset(ro.failed, ro.failure_step, ro.failure_reason))
    keys = sorted({(str(s), round(float(v), 6)) for s, v in zip(ro.shift, ro.severity)}, key=lambda k: (k[0] != "none", k))
    rows = []
    for shift, severity in keys:
        m = (ro.shift == shift) & np.isclose(ro.severity, severity)
        failed = m & ro.failed
        reasons = Counter(r or "unknown" for r in ro.failure_reason[failed])
        rows.append(CellCounts(
            shift, severity, int(m.sum()), int((m & ro.success).sum()), int(failed.sum()),
            int((m & alarmed).sum()) if recorded else None, int((failed & alarmed).sum()) if recorded else None,
            int((m & before).sum()) if recorded else None, tuple(reasons.most_common()),
        ))
    return rows


def four_kinds(rows: list[CellCounts]) -> dict[str, int]:
    """Totals of success/failure in distribution ('none') and under shift."""
    ident = [r for r in rows if r.shift == "none"]
    shifted = [r for r in rows if r.shift != "none"]
    return {"success_id": sum(r.success for r in ident), "success_ood": sum(r.success for r in shifted),
            "fail_id": sum(r.failure for r in ident), "fail_ood": sum(r.failure for r in shifted)}
