"""Renderers of an evaluation result: report.md, metrics.json, config.json, the PNG plots, the
terminal table, and repeats.md / repeats.json. They read the engine's results and write files;
they compute no metric and deploy nothing (deploying is fiper.evaluation.deploy)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from fiper.atomic import write_atomic
from fiper.evaluation.render.metrics_json import json_safe, metrics_document
from fiper.evaluation.render.report_md import report_markdown
from fiper.evaluation.render.repeats_md import repeats_markdown, write_repeats
from fiper.evaluation.render.terminal import summary_table
from fiper.evaluation.results import EvaluationResult

__all__ = ["metrics_document", "repeats_markdown", "report_markdown", "summary_table", "write_outputs", "write_repeats"]


def write_outputs(result: EvaluationResult, out_dir: str | os.PathLike, *, plots: bool = True) -> dict[str, Path]:
    """Write metrics.json, report.md, config.json and (unless ``plots=False``) the PNG figures into ``out_dir``."""
    from fiper.evaluation.render.plots import plot_task

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = result.config
    drawn = {name: plot_task(task, out, method=cfg.plot_method, kind=cfg.plot_threshold_type, delta=cfg.plot_delta,
                             seed=cfg.seed, baselines=cfg.baselines, references=cfg.references,
                             d1_fraction=cfg.band_d1_fraction)
             for name, task in result.tasks.items()} if plots else {}
    paths = {"metrics": out / "metrics.json", "report": out / "report.md", "config": out / "config.json"}
    write_atomic(paths["metrics"], json.dumps(metrics_document(result), indent=1, allow_nan=False))
    write_atomic(paths["report"], report_markdown(result, drawn))
    write_atomic(paths["config"], json.dumps(json_safe(cfg.as_dict()), indent=1, allow_nan=False))
    for task_plots in drawn.values():
        for file in task_plots["files"].values():
            paths[f"plot:{file}"] = out / file
    return paths
