"""Paired comparison over split seeds: is a method's lead larger than the split-to-split noise?

Two methods evaluated on the same splits share most of their noise (which episodes landed in
test), so the per-split difference has a far smaller spread than either method's own sd. For
each guaranteed row this gives the difference to the best guaranteed row of another method on
its task (by mean over repeats): mean ± standard error over the repeats, and on how many splits
it was ahead. Another method, because a method's own rows (its other threshold type, or its
'chosen' row, which copies one of them) are not a competitor. The margin over the references
pairs deployable rows instead (each method's 'chosen' row against the best reference's), the
margin report.md states for one split.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from fiper.evaluation.config import criterion_value
from fiper.evaluation.results import CHOSEN

PAIRED_FIELDS = ("accuracy", "twa")
PER_REPEAT_FIELDS = (*PAIRED_FIELDS, "auroc")  # kept per split by summarise_repeats: every selection criterion's metrics


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
            out.append(_paired(task, field, row, ref))
    return out


def _paired(task: str, field: str, row: dict[str, Any], ref: dict[str, Any]) -> dict[str, Any]:
    """Per-split ``field`` of ``row`` minus ``ref``'s: mean ± SE over the splits where both are defined."""
    per_repeat = [None if a is None or b is None else a - b for a, b in zip(row[f"{field}_per_repeat"], ref[f"{field}_per_repeat"])]
    diffs = [d for d in per_repeat if d is not None]
    n = len(diffs)
    mean, sd = mean_sd(diffs)
    return {"task": task, "field": field, "method": row["method"], "threshold_type": row["threshold_type"],
            "reference": _label(ref), "diff_mean": mean, "diff_se": sd / math.sqrt(n) if n > 1 else None,
            "ahead": sum(d > 1e-12 for d in diffs), "n": n, "diff_per_repeat": per_repeat}


def paired_to_baselines(rows: Sequence[dict[str, Any]], field: str, baselines: Collection[str]) -> list[dict[str, Any]]:
    """Every guaranteed row of a method outside ``baselines`` against the best baseline row."""
    if not baselines:
        return []
    return [p for p in paired_to_best_other(rows, field, set(baselines)) if p["method"] not in baselines]


def criterion_mean(row: dict[str, Any], criterion: str) -> float | None:
    """A summary row's selection criterion, mean over repeats (None where a metric it needs is undefined)."""
    value = criterion_value(criterion, lambda metric: math.nan if row.get(f"{metric}_mean") is None else row[f"{metric}_mean"])
    return None if math.isnan(value) else value


def deployable_rows(rows: Sequence[dict[str, Any]], task: str) -> dict[str, dict[str, Any]]:
    """Per method of ``task``, the summary row it deploys: its 'chosen' row, else its first guaranteed
    type (``findings.deployable_label``, the rule report.md applies to one split)."""
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r["task"] != task:
            continue
        if r["threshold_type"] == CHOSEN or (r["guaranteed"] and r["method"] not in out):
            out[r["method"]] = r
    return out


def paired_to_references(rows: Sequence[dict[str, Any]], field: str, references: Collection[str],
                         criterion: str = "accuracy_twa") -> list[dict[str, Any]]:
    """What the monitor adds, report.md's margin over split seeds: every other method's deployable row
    minus the best reference's deployable row, per split. The best reference is the one whose deployable
    row has the highest selection ``criterion`` (mean over repeats), one row for every field."""
    if field not in PAIRED_FIELDS:
        raise ValueError(f"paired field {field!r} unknown; expected one of {PAIRED_FIELDS}")
    out = []
    for task in sorted({r["task"] for r in rows}):
        deployable = deployable_rows(rows, task)
        ranked = [(criterion_mean(r, criterion), r) for m, r in deployable.items() if m in references]
        ranked = [(v, r) for v, r in ranked if v is not None]
        if not ranked:
            continue
        ref = max(ranked, key=lambda vr: vr[0])[1]
        for method, row in deployable.items():
            if method in references:
                continue
            out.append(_paired(task, field, row, ref))
    return out


def select_against_members(rows: Sequence[dict[str, Any]], selects: Mapping[str, Sequence[str]],
                           criterion: str = "accuracy_twa") -> list[dict[str, Any]]:
    """Did a select's choice on validation transfer to test? Per task and select method, its deployable row's
    per-split ``criterion`` minus that of the member best in hindsight (highest mean over the splits), and minus
    the best member of each split (an oracle no validation reaches): mean ± SE over the splits where all are defined."""
    out = []
    for task in sorted({r["task"] for r in rows}):
        deployable = deployable_rows(rows, task)
        for method, members in selects.items():
            present = [m for m in members if m in deployable]
            if method not in deployable or not present:
                continue
            per = {m: _criterion_per_repeat(deployable[m], criterion) for m in (method, *present)}
            splits = [k for k in range(len(per[method])) if all(v[k] is not None for v in per.values())]
            if not splits:
                continue
            means = {m: sum(per[m][k] for k in splits) / len(splits) for m in present}
            best = max(present, key=lambda m: means[m])
            to_best = [per[method][k] - per[best][k] for k in splits]
            to_oracle = [per[method][k] - max(per[m][k] for m in present) for k in splits]
            n = len(splits)
            (mb, sb), (mo, so) = mean_sd(to_best), mean_sd(to_oracle)
            out.append({"task": task, "method": method, "criterion": criterion, "n": n, "members": means,
                        "select": sum(per[method][k] for k in splits) / n, "best_member": best,
                        "vs_best_mean": mb, "vs_best_se": sb / math.sqrt(n) if n > 1 else None,
                        "ahead": sum(d > 1e-12 for d in to_best), "behind": sum(d < -1e-12 for d in to_best),
                        "vs_split_best_mean": mo, "vs_split_best_se": so / math.sqrt(n) if n > 1 else None})
    return out


def _criterion_per_repeat(row: dict[str, Any], criterion: str) -> list[float | None]:
    """A summary row's selection criterion per split (None where a metric it needs is undefined)."""
    def value(k: int) -> float | None:
        def metric(name: str) -> float:
            got = (row.get(f"{name}_per_repeat") or [])[k:k + 1]
            return math.nan if not got or got[0] is None else got[0]

        v = criterion_value(criterion, metric)
        return None if math.isnan(v) else float(v)

    return [value(k) for k in range(len(row["accuracy_per_repeat"]))]


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
