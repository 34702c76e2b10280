"""Repeated evaluation over several split seeds, and the summary across them.

One split of a few hundred episodes moves a method's test accuracy by several points (which
episodes land in fit / calibration / validation / test), enough to reorder close methods. Repeating
the whole evaluation (split, fit, calibration, selection, test) with seeds s, s+1, ... and reporting
mean ± sd over the repeats makes a comparison between methods a statement about the methods.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from fiper.evaluation.config import EvaluationConfig
from fiper.evaluation.paired import PER_REPEAT_FIELDS, mean_sd
from fiper.evaluation.engine import evaluate_tasks
from fiper.evaluation.results import EvaluationResult
from fiper.evaluation.rollouts import load_rollouts

SUMMARY_FIELDS = ("accuracy", "twa", "auroc", "tpr", "tnr", "far_id")


def evaluate_repeats(stores: str | Sequence[str], config: EvaluationConfig, repeats: int,
                     on_result: Callable[[int, EvaluationResult], None] | None = None) -> list[list[dict[str, Any]]]:
    """Evaluate ``repeats`` times with split seeds config.seed + k (stores loaded once); per repeat
    its metric records. ``on_result(k, result)`` sees each full result (e.g. to write its outputs)."""
    if int(repeats) < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    tasks = load_rollouts(stores, control_period_s=config.control_period_s, progress=config.progress)
    out = []
    for k in range(int(repeats)):
        cfg = dataclasses.replace(config, seed=config.seed + k)
        result = evaluate_tasks(tasks, cfg)
        if on_result is not None:
            on_result(k, result)
        out.append(result.records())
    return out


def summarise_repeats(per_repeat: Sequence[Sequence[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per task x method x threshold type: each field averaged over the δ grid within a
    repeat, then mean and sd over repeats; ``far_over`` counts (repeat, δ) records whose FAR on
    in-distribution successes exceeds δ + 3 SE; ``<field>_per_repeat`` keeps accuracy, TWA and AUROC per
    repeat (None where undefined) for paired comparisons."""
    groups: dict[tuple, dict[str, Any]] = {}
    for k, records in enumerate(per_repeat):
        for r in records:
            if isinstance(r["delta"], str):  # the published mean-over-δ records: recomputed here
                continue
            g = groups.setdefault((r["task"], r["method"], r["threshold_type"]),
                                  {"guaranteed": r["guaranteed"], "values": {}, "far_over": 0, "deltas": set()})
            g["deltas"].add(r["delta"])
            per = g["values"].setdefault(k, {f: [] for f in SUMMARY_FIELDS})
            for f in SUMMARY_FIELDS:
                if r[f] is not None:  # None: undefined on this split (e.g. AUROC with one class)
                    per[f].append(float(r[f]))
            if r["far_id"] is not None and r["far_id_se"] is not None:
                g["far_over"] += int(r["far_id"] > r["delta"] + 3 * r["far_id_se"] + 1e-12)
    rows = []
    for (task, method, kind), g in groups.items():
        row: dict[str, Any] = {"task": task, "method": method, "threshold_type": kind, "guaranteed": g["guaranteed"],
                               "repeats": len(g["values"]), "n_deltas": len(g["deltas"]), "far_over": g["far_over"]}
        for f in SUMMARY_FIELDS:
            row[f"{f}_mean"], row[f"{f}_sd"] = mean_sd([sum(v[f]) / len(v[f]) for v in g["values"].values() if v[f]])
        for f in PER_REPEAT_FIELDS:
            row[f"{f}_per_repeat"] = [sum(v[f]) / len(v[f]) if v.get(f) else None
                                      for v in (g["values"].get(k, {}) for k in range(len(per_repeat)))]
        rows.append(row)
    return rows
