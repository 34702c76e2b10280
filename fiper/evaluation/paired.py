"""Paired comparison over split seeds: is a method's lead larger than the split-to-split noise?

Two methods evaluated on the same splits share most of their noise (which episodes landed in
test), so the per-split difference has a far smaller spread than either method's own sd. For
each guaranteed row this gives the difference to the best guaranteed row of another method on
its task (by mean over repeats): mean ± standard error over the repeats, and on how many splits
it was ahead. Another method, because a method's own rows (its other threshold type, or its
'chosen' row, which copies one of them) are not a competitor.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from typing import Any

PAIRED_FIELDS = ("accuracy", "twa")


def mean_sd(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample sd (ddof 1; 0 for one value; None, None for none)."""
    if not values:
        return None, None
    m = sum(values) / len(values)
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return m, sd


def _label(row: dict[str, Any]) -> str:
    return f"{row['method']} ({row['threshold_type']})"


def paired_to_best_other(rows: Sequence[dict[str, Any]], field: str, among: Collection[str] | None = None) -> list[dict[str, Any]]:
    """Per guaranteed row: per-split ``field`` minus that of the best guaranteed row of another
    method on the task (with ``among``: of another method among those named, e.g. the baselines);
    rows need ``<field>_per_repeat`` (summarise_repeats). Splits where either is undefined are
    left out; SE is None with fewer than two splits."""
    if field not in PAIRED_FIELDS:
        raise ValueError(f"paired field {field!r} unknown; expected one of {PAIRED_FIELDS}")
    out = []
    for task in sorted({r["task"] for r in rows}):
        mine = [r for r in rows if r["task"] == task and r["guaranteed"] and r[f"{field}_mean"] is not None]
        ranked = sorted(mine, key=lambda r: -r[f"{field}_mean"])
        for row in ranked:
            ref = next((r for r in ranked if r["method"] != row["method"] and (among is None or r["method"] in among)), None)
            if ref is None:  # one method only: nothing to compare with
                continue
            diffs = [a - b for a, b in zip(row[f"{field}_per_repeat"], ref[f"{field}_per_repeat"]) if a is not None and b is not None]
            n = len(diffs)
            mean, sd = mean_sd(diffs)
            se = sd / math.sqrt(n) if n > 1 else None
            out.append({"task": task, "field": field, "method": row["method"], "threshold_type": row["threshold_type"],
                        "reference": _label(ref), "diff_mean": mean, "diff_se": se,
                        "ahead": sum(d > 1e-12 for d in diffs), "n": n})
    return out


def paired_to_baselines(rows: Sequence[dict[str, Any]], field: str, baselines: Collection[str]) -> list[dict[str, Any]]:
    """Every guaranteed row of a method outside ``baselines`` against the best baseline row (empty without baselines)."""
    if not baselines:
        return []
    among = set(baselines)
    return [p for p in paired_to_best_other(rows, field, among) if p["method"] not in among]
