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
            per_repeat = [None if a is None or b is None else a - b for a, b in zip(row[f"{field}_per_repeat"], ref[f"{field}_per_repeat"])]
            diffs = [d for d in per_repeat if d is not None]
            n = len(diffs)
            mean, sd = mean_sd(diffs)
            se = sd / math.sqrt(n) if n > 1 else None
            out.append({"task": task, "field": field, "method": row["method"], "threshold_type": row["threshold_type"],
                        "reference": _label(ref), "diff_mean": mean, "diff_se": se,
                        "ahead": sum(d > 1e-12 for d in diffs), "n": n, "diff_per_repeat": per_repeat})
    return out


def paired_to_group(rows: Sequence[dict[str, Any]], field: str, group: Collection[str]) -> list[dict[str, Any]]:
    """Every guaranteed row of a method outside ``group`` (the baselines, or the references) against
    the best row of the group (empty without a group)."""
    if not group:
        return []
    among = set(group)
    return [p for p in paired_to_best_other(rows, field, among) if p["method"] not in among]


def paired_to_baselines(rows: Sequence[dict[str, Any]], field: str, baselines: Collection[str]) -> list[dict[str, Any]]:
    """Every guaranteed row of a method outside ``baselines`` against the best baseline row."""
    return paired_to_group(rows, field, baselines)


def paired_to_references(rows: Sequence[dict[str, Any]], field: str, references: Collection[str]) -> list[dict[str, Any]]:
    """Every guaranteed row of a method outside ``references`` against the best reference row: what it adds."""
    return paired_to_group(rows, field, references)


MEAN_OVER_TASKS = "mean over tasks"


def mean_over_tasks(paired: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (field, method, threshold type) present on every task: the per-split difference averaged
    over the tasks, then mean ± SE over the splits where every task's difference is defined."""
    tasks = sorted({p["task"] for p in paired})
    groups: dict[tuple, dict[str, dict[str, Any]]] = {}
    for p in paired:
        groups.setdefault((p["field"], p["method"], p["threshold_type"]), {})[p["task"]] = p
    out = []
    for (field, method, kind), by_task in groups.items():
        if len(by_task) != len(tasks):  # not evaluated on every task: no average over tasks
            continue
        per_task = [by_task[t]["diff_per_repeat"] for t in tasks]
        diffs = [sum(split) / len(split) for split in zip(*per_task) if all(d is not None for d in split)]
        n = len(diffs)
        mean, sd = mean_sd(diffs)
        out.append({"task": MEAN_OVER_TASKS, "field": field, "method": method, "threshold_type": kind,
                    "reference": "the best per task", "diff_mean": mean, "diff_se": sd / math.sqrt(n) if n > 1 else None,
                    "ahead": sum(d > 1e-12 for d in diffs), "n": n, "tasks": tasks})
    return out
