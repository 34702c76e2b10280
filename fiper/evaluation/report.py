"""Outputs of an evaluation: metrics.json, report.md, config.json, PNG plots, and a terminal table."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from fiper.evaluation.cells import cell_counts, cells_markdown, four_kinds
from fiper.evaluation.deploy import deploy_markdown, write_monitor_choices
from fiper.evaluation.detection import cell_detection, detection_markdown
from fiper.evaluation.live import live_markdown
from fiper.evaluation.pipeline import CHOSEN, EvaluationResult, TaskResult
from fiper.evaluation.splits import PARTS, STRATA

FORMAT, VERSION = "fiper-evaluation", 1
COLUMNS = (("TWA", "twa"), ("Acc", "accuracy"), ("DT", "dt"), ("TPR", "tpr"), ("TNR", "tnr"), ("AUROC", "auroc"))


def _mean(values: Any) -> float:
    return float(np.mean(np.asarray(values, dtype=np.float64)))


def _fmt(value: float, digits: int = 2) -> str:
    return "nan" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _window_text(windows: dict) -> str:
    return ", ".join(f"{s}={w}" for s, w in windows.items())


def _chosen_text(res) -> str:
    """The chosen windows, prefixed with the member a 'select' method chose."""
    return (f"{res.selected}: " if res.selected else "") + _window_text(res.windows)


def _kind_text(kind: str, res) -> str:
    """The threshold type label; the chosen row names the type it chose."""
    return f"{kind} ({res.threshold_type})" if kind == CHOSEN else kind


def _rows(task: TaskResult):
    """(method, kind, TypeResult) in configuration order, each method's chosen type last."""
    for name, method in task.methods.items():
        for kind, res in method.results():
            yield name, kind, res


def summary_table(result: EvaluationResult) -> str:
    """Per task: methods x threshold types, test metrics averaged over the delta grid."""
    lines = []
    for task in result.tasks.values():
        sizes = task.split_sizes
        lines.append(f"task {task.task}: " + ", ".join(f"{p} {sizes[p]['total']}" for p in PARTS)
                     + f"; deltas {task.deltas[0]:g}..{task.deltas[-1]:g} ({len(task.deltas)})")
        head = f"{'method':<14} {'threshold':<17} " + " ".join(f"{c:>6}" for c, _ in COLUMNS) + f" {'FAR-ID':>7}  window"
        lines += [head, "-" * len(head)]
        for name, kind, res in _rows(task):
            vals = " ".join(f"{_fmt(_mean(res.test[k])):>6}" for _, k in COLUMNS)
            lines.append(f"{name:<14} {_kind_text(kind, res):<17} {vals} {_fmt(_mean(res.test['far_id'])):>7}  {_chosen_text(res)}")
        for live in task.live:
            lines.append(f"live monitor {live['monitor']} ({live['setting'] or 'settings not readable'}), {live['episodes']} rollouts: "
                         f"TWA {_fmt(live['twa'])}, Acc {_fmt(live['accuracy'])}, TPR {_fmt(live['tpr'])}, TNR {_fmt(live['tnr'])}, "
                         f"FAR-ID {_fmt(live['far_id'])}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _winners(task: TaskResult, keep) -> dict[str, tuple[str, str, float]]:
    """Per metric, the (method, threshold label, value) with the best test mean over delta among rows ``keep(kind, res)``."""
    best: dict[str, tuple[str, str, float]] = {}
    for name, kind, res in _rows(task):
        if not keep(kind, res):
            continue
        for metric in ("twa", "accuracy"):
            value = _mean(res.test[metric])
            if math.isfinite(value) and (metric not in best or value > best[metric][2]):
                best[metric] = (name, _kind_text(kind, res), value)
    return best


WINNER_ROWS = (
    ("among guaranteed threshold types (constant, band)", lambda kind, res: res.guaranteed and kind != CHOSEN),
    ("among all threshold types", lambda kind, res: kind != CHOSEN),
    ("with each method's guaranteed type chosen on validation (no test-set choice)", lambda kind, res: kind == CHOSEN),
)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"] + ["| " + " | ".join(r) + " |" for r in rows]


def _detection_kind(task: TaskResult, preferred: str | None) -> str:
    """The plots' threshold type when evaluated, else the first evaluated type."""
    kinds = list(next(iter(task.methods.values())).types)
    return preferred if preferred in kinds else kinds[0]


def task_markdown(task: TaskResult, plots: dict[str, Any] | None, detection: tuple[str | None, float] = (None, 0.05)) -> list[str]:
    ro = task.rollouts
    out = [f"## Task `{task.task}`", ""]
    out.append(f"{ro.n_episodes} episodes, {int(ro.decision_ends[-1])} decisions from {len(ro.stores)} store(s); "
               f"control period {ro.control_period_s:g} s per env step; longest episode {int(ro.lengths.max())} decisions "
               f"(the 'episode' window and the DT normaliser).")
    out += [""] + [f"- `{s}`" for s in ro.stores] + [""]
    for note in ro.notes:
        out.append(f"Note: {note}")
    out += ["### Rollouts per cell", ""] + cells_markdown(cell_counts(ro))
    out += ["", "Live alarm columns: the monitor that ran during recording (absent when none did); alarm before onset: "
            "first live alarm at or before the failure step.", ""]
    sizes = task.split_sizes
    out += ["### Split", ""] + _table(["part", "total", *STRATA], [[p, *(str(sizes[p][k]) for k in ("total", *STRATA))] for p in PARTS])
    out += ["", "Fit and calibration episodes are in-distribution successes only; windows are chosen on validation, "
            "all metrics below are on test.", ""]
    if task.calibration_parts is not None:
        a, b = (p.size for p in task.calibration_parts)
        out += [f"Refit after selection: windows and 'select' members were chosen with thresholds from {a} calibration "
                f"episodes; the test thresholds were refitted on the other {b}, which the choice never saw.", ""]
    kinds = list(next(iter(task.methods.values())).types)
    out += ["### Chosen windows and threshold type (validation)", ""]
    out += _table(["method", *kinds, "chosen guaranteed type"],
                  [[n, *(_chosen_text(m.types[k]) for k in kinds), m.chosen.threshold_type if m.chosen else "–"]
                   for n, m in task.methods.items()])
    out += ["", f"Rows `{CHOSEN} (<type>)` below are the guaranteed threshold type (constant or band) whose chosen window "
            "validates best, measured on test like the others."]
    out += ["", "### Test metrics, mean over delta", ""]
    header = ["method", "threshold", "guaranteed", *(c for c, _ in COLUMNS), "FAR-ID ± SE", "flag success-OOD", "alarm before onset", "median warning s"]
    rows = []
    for name, kind, res in _rows(task):
        t = res.test
        rows.append([name, _kind_text(kind, res), "yes" if res.guaranteed else "no", *(_fmt(_mean(t[k])) for _, k in COLUMNS),
                     f"{_fmt(_mean(t['far_id']))} ± {_fmt(_mean(t['far_id_se']))}", _fmt(_mean(t["success_ood_flag_rate"])),
                     _fmt(_mean(t["lead_fraction_before_onset"])), _fmt(_mean(t["lead_median_warning_s"]))])
    out += _table(header, rows)
    out += ["", "NaN: undefined at some delta (e.g. DT without true positives); see docs/metrics.md.", ""]
    kind = _detection_kind(task, detection[0])
    rows, at = cell_detection(task, kind, detection[1])
    out += ["### Detection per stress cell (test)", ""] + detection_markdown(rows, kind, at) + [""]
    fiper = "fiper" if "fiper" in task.methods else next(iter(task.methods))
    out += [f"### `{fiper}` per delta", ""]
    for kind, res in task.methods[fiper].types.items():
        t = res.test
        rows = [[f"{1 - d:.2f}", *(_fmt(float(np.asarray(t[k])[i])) for _, k in COLUMNS),
                 f"{_fmt(float(np.asarray(t['far_id'])[i]))} ± {_fmt(float(np.asarray(t['far_id_se'])[i]))}"]
                for i, d in reversed(list(enumerate(task.deltas)))]
        out += [f"{kind} (windows {_window_text(res.windows)}):", ""] + _table(["1-delta", *(c for c, _ in COLUMNS), "FAR-ID ± SE"], rows) + [""]
    out += ["### Winners (test, mean over delta)", ""]
    for label, keep in WINNER_ROWS:
        if not any(keep(kind, res) for _, kind, res in _rows(task)):
            continue  # e.g. a single guaranteed type evaluated: nothing was chosen
        best = _winners(task, keep)
        parts = [f"{metric} → **{m}** ({k}, {v:.3f})" for metric, (m, k, v) in sorted(best.items(), key=lambda kv: kv[0] != "twa")]
        out.append(f"- {label}: " + ("; ".join(parts) if parts else "undefined (no failures or no successes in test)"))
    out.append("")
    if plots:
        out += ["### Plots", ""]
        out.append(f"Traces of `{plots['method']}` ({plots['threshold_type']} threshold, delta={plots['delta']:g}) for one random test rollout per kind "
                   f"(windowed score, dashed threshold, x = alarm, red line = first alarm, dotted = failure step).")
        if plots["missing_kinds"]:
            out.append(f"Kinds without a test episode (not drawn): {', '.join(plots['missing_kinds'])}.")
        out.append("")
        out += [f"![{key}]({file})" for key, file in plots["files"].items()] + [""]
    secs = task.seconds
    out += [f"Time: fit + score {secs['fit_and_score']:.1f} s, calibration {secs['calibrate']:.2f} s, "
            f"selection + test {secs['select_and_test']:.2f} s.", ""]
    return out


def report_markdown(result: EvaluationResult, plots: dict[str, dict] | None = None) -> str:
    cfg = result.config
    lines = ["# Offline evaluation", "",
             f"Methods: {', '.join(cfg.methods)}. Threshold types: {', '.join(cfg.threshold_types)}. "
             f"Windows: {', '.join(map(str, cfg.windows))} (selected on validation by mean {cfg.selection} over delta, ties by TWA). "
             f"Deltas: {', '.join(f'{d:g}' for d in cfg.deltas)}. Seed {cfg.seed}. Full configuration: `config.json`.", ""]
    for name, task in result.tasks.items():
        lines += task_markdown(task, (plots or {}).get(name), (cfg.plot_threshold_type, cfg.plot_delta))
        lines += live_markdown(task.live) + deploy_markdown(task, cfg.deploy_method)
    return "\n".join(lines)


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json_safe(value.tolist())
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def metrics_document(result: EvaluationResult) -> dict[str, Any]:
    """The metrics.json content: records plus per-task split, selection and timing details."""
    tasks = {}
    for name, task in result.tasks.items():
        selection = {}
        for m, kind, res in _rows(task):
            mine = selection.setdefault(m, {})
            if kind == CHOSEN:  # a copy of one type's result: which type, not its candidates again
                mine[kind] = {"threshold_type": res.threshold_type, "chosen": _chosen_text(res)}
                continue
            grids = [task.grids[s] for s in task.spec_of(m, kind).scores]
            mine[kind] = {
                "chosen": _chosen_text(res),
                "candidates": [{"windows": {g.name: g.labels[i] for g, i in zip(grids, c)},
                                **{k: v[j] for k, v in res.validation.items()}} for j, c in enumerate(res.candidates)],
            }
        cells = cell_counts(task.rollouts)
        kind = _detection_kind(task, result.config.plot_threshold_type)
        detected, at = cell_detection(task, kind, result.config.plot_delta)
        tasks[name] = {"stores": list(task.rollouts.stores), "episodes": task.rollouts.n_episodes,
                       "cells": [{**vars(c), "reasons": dict(c.reasons)} for c in cells], "four_kinds": four_kinds(cells),
                       "control_period_s": task.rollouts.control_period_s, "split": task.split_sizes,
                       "selection": selection, "seconds": task.seconds, "notes": task.rollouts.notes,
                       "calibration_parts": None if task.calibration_parts is None else
                       {"selection": task.calibration_parts[0].tolist(), "final": task.calibration_parts[1].tolist()},
                       "cell_detection": {"threshold_type": kind, "delta": at, "cells": [vars(r) for r in detected]},
                       "live": task.live}
    doc = {"format": FORMAT, "version": VERSION, "selection_criterion": result.config.selection,
           "records": result.records(), "tasks": tasks}
    return _json_safe(doc)


def write_outputs(result: EvaluationResult, out_dir: str | os.PathLike, *, plots: bool = True) -> dict[str, Path]:
    """Write metrics.json, report.md, config.json, monitor_<task>.yaml (deploy_method) and (unless ``plots=False``) the PNG figures."""
    from fiper.evaluation.plots import plot_task

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    drawn = {}
    if plots:
        for name, task in result.tasks.items():
            cfg = result.config
            drawn[name] = plot_task(task, out, method=cfg.plot_method, kind=cfg.plot_threshold_type, delta=cfg.plot_delta, seed=cfg.seed)
    paths = {"metrics": out / "metrics.json", "report": out / "report.md", "config": out / "config.json"}
    paths["metrics"].write_text(json.dumps(metrics_document(result), indent=1, allow_nan=False))
    paths["report"].write_text(report_markdown(result, drawn))
    paths["config"].write_text(json.dumps(_json_safe(result.config.as_dict()), indent=1, allow_nan=False))
    for name, file in write_monitor_choices(result, out).items():
        paths[f"monitor:{name}"] = file
    for task_plots in drawn.values():
        for file in task_plots["files"].values():
            paths[f"plot:{file}"] = out / file
    return paths
