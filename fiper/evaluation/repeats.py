"""Repeated evaluation over several split seeds, and the summary across them.

One split of a few hundred episodes moves a method's test accuracy by several points (which
episodes land in fit / calibration / validation / test), enough to reorder close methods. Repeating
the whole evaluation (split, fit, calibration, selection, test) with seeds s, s+1, ... and reporting
mean ± sd over the repeats makes a comparison between methods a statement about the methods.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fiper.evaluation.config import EvaluationConfig
from fiper.evaluation.paired import PAIRED_FIELDS, mean_sd, paired_markdown, paired_to_baselines, paired_to_best_other
from fiper.evaluation.pipeline import EvaluationResult, evaluate_tasks
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
    in-distribution successes exceeds δ + 3 SE; ``<field>_per_repeat`` keeps accuracy and TWA per
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
        for f in PAIRED_FIELDS:
            row[f"{f}_per_repeat"] = [sum(v[f]) / len(v[f]) if v.get(f) else None
                                      for v in (g["values"].get(k, {}) for k in range(len(per_repeat)))]
        rows.append(row)
    return rows


def repeats_markdown(rows: Sequence[dict[str, Any]], baselines: Sequence[str] = ()) -> str:
    """Per task, methods by mean accuracy, the best guaranteed accuracy and TWA in bold; then the
    paired tables (against the best other method, and with ``baselines`` against the best of those)."""
    lines = ["# Evaluation over repeated splits", ""]
    for task in sorted({r["task"] for r in rows}):
        mine = sorted((r for r in rows if r["task"] == task), key=lambda r: (not r["guaranteed"], -(r["accuracy_mean"] or 0.0)))
        guaranteed = [r for r in mine if r["guaranteed"]] or mine
        best = {f: max((r[f"{f}_mean"] for r in guaranteed if r[f"{f}_mean"] is not None), default=None) for f in ("accuracy", "twa")}
        n = mine[0]["repeats"]
        lines += [f"## {task}: {n} split seeds, mean ± sd of the mean over {mine[0]['n_deltas']} δ", "",
                  "| method | threshold | guaranteed | Acc | TWA | AUROC | TPR | TNR | FAR-ID | records with FAR > δ + 3 SE |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in mine:
            cells = []
            for f in SUMMARY_FIELDS:
                text = "–" if r[f"{f}_mean"] is None else f"{r[f'{f}_mean']:.3f} ± {r[f'{f}_sd']:.3f}"
                cells.append(f"**{text}**" if r["guaranteed"] and f in best and r[f"{f}_mean"] == best[f] else text)
            lines.append(f"| {r['method']} | {r['threshold_type']} | {'yes' if r['guaranteed'] else 'no'} | "
                         + " | ".join(cells) + f" | {r['far_over']} |")
        lines.append("")
    if any(r["repeats"] > 1 for r in rows):
        lines += paired_markdown(rows, baselines)
    return "\n".join(lines)


def write_repeats(rows: Sequence[dict[str, Any]], seeds: Sequence[int], out_dir: str | os.PathLike,
                  baselines: Sequence[str] = ()) -> dict[str, Path]:
    """repeats.json (the rows, the seeds and the paired differences) and repeats.md in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"repeats_json": out / "repeats.json", "repeats_md": out / "repeats.md"}
    paired = [p for f in PAIRED_FIELDS for p in paired_to_best_other(rows, f)]
    vs_baselines = [p for f in PAIRED_FIELDS for p in paired_to_baselines(rows, f, baselines)]
    doc = {"seeds": list(seeds), "rows": list(rows), "paired": paired, "baselines": list(baselines), "paired_vs_baselines": vs_baselines}
    paths["repeats_json"].write_text(json.dumps(doc, indent=1, allow_nan=False))
    paths["repeats_md"].write_text(repeats_markdown(rows, baselines))
    return paths
