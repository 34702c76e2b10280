"""The configuration an evaluation chose for one method, as a monitor file to deploy (fiper.monitor.monitor_file).

The row deployed is the method's ``chosen`` row (the guaranteed threshold type that validated
best), or its only guaranteed type when just one was evaluated: everything in it was picked on
validation, so its test metrics are what the deployed monitor is expected to do.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from fiper.evaluation.findings import deployable_label
from fiper.evaluation.results import TaskResult, TypeResult, slug
from fiper.monitor.monitor_file import write_monitor_file

SUMMARY_FIELDS = ("accuracy", "twa", "tpr", "tnr", "far_id", "auroc", "lead_fraction_before_onset")


def deployed_row(task: TaskResult, method: str) -> tuple[str, TypeResult] | None:
    """(record label, result) of the row to deploy; None when the method has no guaranteed type or was left out of
    the task (its stores lack an input it reads: fiper.evaluation.runnable)."""
    if method not in task.methods:
        return None
    label = deployable_label(task.methods[method])
    return None if label is None else (label, task.methods[method].result(label))


def _number(value: Any) -> float | None:
    value = float(value)
    return round(value, 4) if np.isfinite(value) else None


def deployed_spec(task: TaskResult, method: str, *, selection: str = "") -> dict[str, Any] | None:
    """The chosen MonitorSpec of ``method`` on ``task`` and its test metrics: {spec, evaluated} (None without a guaranteed threshold type)."""
    row = deployed_row(task, method)
    if row is None:
        return None
    label, res = row
    spec = task.spec_of(method, label)
    test = res.test
    per_delta = [{"delta": float(d), **{f: _number(np.asarray(test[f])[i]) for f in SUMMARY_FIELDS}}
                 for i, d in enumerate(task.deltas)]
    return {
        "spec": spec.monitor_spec(task.scored.specs, res.window_steps, res.threshold_type),
        "evaluated": {
            "task": task.task,
            "method": method,
            "selected": res.selected,
            "window_labels": {s: res.windows[s] for s in spec.scores},
            "selection_criterion": selection,
            "num_samples": None if task.rollouts.samples is None else int(task.rollouts.samples.shape[1]),
            "test_episodes": int(task.split.test.size),
            "test_mean_over_delta": {f: _number(np.mean(np.asarray(test[f], dtype=np.float64))) for f in SUMMARY_FIELDS},
            "test_per_delta": per_delta,
        },
    }


def deploy_commands(file: str | Path) -> list[str]:
    """The two commands that fit and calibrate a monitor from ``file``."""
    return [f"python -m launch.fit data=<successful rollouts> policy_dir=<policy> out=<monitor dir> monitor_file={file}",
            "python -m launch.calibrate data=<other successful rollouts> monitor_dir=<monitor dir> delta=<δ>"]


def monitor_file_header(deployed: dict[str, Any], path: Path) -> str:
    """Comment lines: what the file is and the two commands that deploy it."""
    ev, spec = deployed["evaluated"], deployed["spec"]
    member = f" (member {ev['selected']})" if ev["selected"] else ""
    return (f"Monitor chosen by launch.evaluate for task {ev['task']!r}: method {ev['method']}{member}, "
            f"{spec.threshold_type} threshold{' (joint)' if spec.joint else ''}, windows and rule chosen on validation.\n"
            "Deploy it (the evaluated score settings, windows, rule and threshold type):\n"
            + "".join(f"  {line}\n" for line in deploy_commands(path))
            + "evaluated.test_per_delta says what each δ gave on the test split.")


def monitor_file_name(task: str) -> str:
    """The deploy step's file for ``task``; a task name holding '/' (a gymnasium namespace) stays one file name."""
    return f"monitor_{slug(task)}.yaml"


MONITOR_FILES = "monitor_*.yaml"  # the glob of every task's file


def write_monitor_files(result: Any, out_dir: str | os.PathLike) -> dict[str, Path]:
    """The deploy step: ``monitor_<task>.yaml`` per task for ``config.deploy_method`` (none when it is null)."""
    method = result.config.deploy_method
    written = {}
    if method is None:
        return written
    for name, task in result.tasks.items():
        deployed = deployed_spec(task, method, selection=result.config.selection)
        if deployed is not None:
            Path(out_dir).mkdir(parents=True, exist_ok=True)
            path = Path(out_dir) / monitor_file_name(name)
            written[name] = write_monitor_file(deployed["spec"], deployed["evaluated"], path, header=monitor_file_header(deployed, path))
    return written
