"""metrics.json: the metric records plus per-task split, selection, cells, findings and timing details."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fiper.evaluation.cells import four_kinds
from fiper.evaluation.failure_types import task_failure_types
from fiper.evaluation.findings import MARGIN_METRICS, Row, TaskFindings
from fiper.evaluation.render.text import chosen_text
from fiper.evaluation.results import CHOSEN, EvaluationResult, TaskResult
from fiper.evaluation.select_evidence import ChoiceEvidence, select_evidence

FORMAT, VERSION = "fiper-evaluation", 1


def json_safe(value: Any) -> Any:
    """Plain json types; NaN / inf become None (strict json)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def _selection(task: TaskResult) -> dict[str, Any]:
    selection: dict[str, Any] = {}
    for m, kind, res in task.rows():
        mine = selection.setdefault(m, {})
        if kind == CHOSEN:  # a copy of one type's result: which type, not its candidates again
            mine[kind] = {"threshold_type": res.threshold_type, "chosen": chosen_text(res)}
            continue
        grids = [task.grids[s] for s in task.spec_of(m, kind).scores]
        mine[kind] = {
            "chosen": chosen_text(res),
            "candidates": [{"windows": {g.name: g.labels[i] for g, i in zip(grids, c)},
                            **{k: v[j] for k, v in res.validation.items()}} for j, c in enumerate(res.candidates)],
        }
    return selection


def _row(row: Row | None) -> dict[str, str] | None:
    return None if row is None else {"method": row.method, "threshold_type": row.label}


def _margins(f: TaskFindings) -> dict[str, Any] | None:
    """Test Acc and TWA (means over delta) of each non-reference method's deployable row minus the
    best reference row's; ``deployed`` repeats the deployed row's. None without references."""
    if f.best_reference is None:
        return None
    rows = [{**_row(m.row), **{k: getattr(m, k) for k in MARGIN_METRICS}} for m in f.margins]
    d = f.deployed_margin
    return {"reference": _row(f.best_reference), "criterion": f.criterion, "metrics": list(MARGIN_METRICS),
            "deployed": None if d is None else {**_row(d.row), **{k: getattr(d, k) for k in MARGIN_METRICS}}, "rows": rows}


def _findings(task: TaskResult) -> dict[str, Any]:
    f = task.findings
    return {
        "headline": {"deploy_method": f.deploy_method, "deployed": _row(f.deployed), "best_baseline": _row(f.best_baseline),
                     "best_reference": _row(f.best_reference), "references": [_row(r) for r in f.references],
                     "others": [_row(r) for r in f.others], "criterion": f.criterion},
        "margin_over_references": _margins(f),
        "winners": [{"scope": w.scope, "metric": w.metric, **_row(w.row), "value": w.value} for w in f.winners],
        "far_id_above_bound": [{**_row(c.row), "delta": c.delta, "flagged": c.flagged, "n": c.n, "far_id": c.far, "bound": c.bound}
                               for c in f.far_above_bound()],
    }


def _by_failure_type(task: TaskResult) -> dict[str, Any]:
    table = task_failure_types(task)
    return {"threshold_type": table.threshold_type, "method_types": table.method_types, "delta": table.delta,
            "physical_with_onset": table.physical_with_onset, "physical_with_onset_test": table.physical_with_onset_test,
            "rows": [vars(r) for r in table.rows]}


def _choice(c: ChoiceEvidence | None) -> dict[str, Any] | None:
    return None if c is None else {"kept": c.kept, "keep_first_se": c.keep_first_se, "reason": c.reason,
                                   "options": [vars(o) for o in c.options]}


def _select_evidence(task: TaskResult, result: EvaluationResult) -> dict[str, Any] | None:
    """The deployed select method's evidence: each member's (and threshold type's) validation advantage
    over the first and its SE, which was kept and why (None: the deployed method is not a select)."""
    method = task.findings.deploy_method
    ev = None if method is None else select_evidence(task, method, result.config.selection, result.config.seed)
    if ev is None:
        return None
    return {"method": ev.method, "criterion": ev.criterion, "threshold_type": ev.threshold_type,
            "members": _choice(ev.members), "threshold_types": _choice(ev.types)}


def metrics_document(result: EvaluationResult) -> dict[str, Any]:
    """The metrics.json content."""
    tasks = {}
    for name, task in result.tasks.items():
        det = task.findings.detection
        tasks[name] = {"stores": list(task.rollouts.stores), "episodes": task.rollouts.n_episodes,
                       "cells": [{**vars(c), "reasons": dict(c.reasons)} for c in task.cells],
                       "four_kinds": four_kinds(list(task.cells)),
                       "control_period_s": task.rollouts.control_period_s, "split": task.split_sizes,
                       "selection": _selection(task), "seconds": task.seconds, "notes": task.rollouts.notes,
                       "left_out": task.left_out,
                       "calibration_parts": None if task.calibration_parts is None else
                       {"selection": task.calibration_parts[0].tolist(), "final": task.calibration_parts[1].tolist()},
                       "cell_detection": {"threshold_type": det.threshold_type, "method_types": det.method_types, "delta": det.delta,
                                          "cells": [vars(r) for r in det.rows]},
                       "by_failure_type": _by_failure_type(task), "select_evidence": _select_evidence(task, result),
                       "live": task.live, **_findings(task)}
    doc = {"format": FORMAT, "version": VERSION, "selection_criterion": result.config.selection,
           "records": result.records(), "tasks": tasks}
    return json_safe(doc)
