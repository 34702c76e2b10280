"""Evaluate failure monitors on recorded rollouts: python -m launch.evaluate rollouts=<stores> out=<dir>."""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from calibration.thresholds import THRESHOLD_KINDS
from fiper.evaluation import EvaluationConfig, summary_table, write_monitor_files, write_outputs
from fiper.monitor.monitor_file import read_monitor_file
from fiper.evaluation.config import CRITERIA
from fiper.evaluation.render import write_repeats
from fiper.evaluation.repeats import evaluate_repeats, summarise_repeats
import launch.components  # noqa: F401  (the 'score' config group)
from launch.common import plain, removed_on_failure, resolve_device, save_config, set_cpu_threads
from launch.validate import (THREADS, Bad, boolean, choice, list_of, merged, number, optional, positive_int,
                             probability, reported, seconds_per_step, seed, text, validate, window)

LAUNCH_KEYS = ("rollouts", "out", "plots", "cpu_threads", "repeats")
THRESHOLD_TYPES = choice(*THRESHOLD_KINDS)


def _rollouts(value, paths: bool) -> None:
    """A path or glob, or a non-empty list of them (existence is the loader's to report: globs and directories)."""
    try:
        text(value, paths)
    except Bad:
        list_of(text, example="[runs/a.zarr,runs/b.zarr]")(value, paths)


CHECKS = merged(THREADS, {
    "rollouts": _rollouts,
    "out": text,
    "seed": seed,
    "repeats": positive_int,
    "control_period_s": optional(seconds_per_step),
    "split.fit": probability,
    "split.calibration": probability,
    "split.validation": probability,
    "windows": list_of(window, example="[1,5,episode]"),
    "threshold_types": list_of(THRESHOLD_TYPES, example="[constant,band]"),
    "deltas": list_of(probability, example="[0.05,0.1]"),
    "band_d1_fraction": probability,
    "selection": choice(*CRITERIA),
    "refit_after_selection": boolean,
    "deploy_method": optional(text),
    "baselines": list_of(text, non_empty=False, example="[stac,knn]"),
    "references": list_of(text, non_empty=False, example="[elapsed]"),
    "plot_method": optional(text),
    "plot_threshold_type": THRESHOLD_TYPES,
    "plot_delta": number(0.0, 1.0, example=0.05),
    "plots": boolean,
    "progress": boolean,
})


def run(cfg: DictConfig):
    """Compose the library calls (also used by tests with a composed config).

    A run that fails removes the output directory it created (the log stays under outputs/).
    """
    validate(cfg, CHECKS, "evaluate")
    with removed_on_failure(cfg.out):
        return _evaluate(cfg)


def evaluation_config(cfg: DictConfig, device: str | None = None) -> EvaluationConfig:
    """The library's EvaluationConfig from a composed evaluate config (``device``: instead of resolving cfg.device)."""
    settings = {k: v for k, v in plain(cfg).items() if k not in (*LAUNCH_KEYS, "hydra")}
    settings["device"] = device or resolve_device(settings.get("device", "cpu"))
    return EvaluationConfig.from_mapping(settings)


def _evaluate(cfg: DictConfig):
    set_cpu_threads(cfg.cpu_threads)
    config = evaluation_config(cfg)
    repeats = int(cfg.get("repeats", 1))
    first = {}

    def written(k: int, result) -> None:
        """Repeat 0 writes the usual outputs and deploys its choice into out/; later ones their metrics under out/repeats/."""
        if k == 0:
            first["result"] = result
            first["paths"] = write_outputs(result, cfg.out, plots=bool(cfg.plots))
            first["deployed"] = write_monitor_files(result, cfg.out)
        else:
            write_outputs(result, Path(cfg.out) / "repeats" / f"seed_{result.config.seed}", plots=False)

    per_repeat = evaluate_repeats(plain(cfg.rollouts), config, repeats, on_result=written)
    save_config(cfg, cfg.out, "evaluate_config.yaml")
    print(summary_table(first["result"]))
    if repeats > 1:
        extra = write_repeats(summarise_repeats(per_repeat), [config.seed + k for k in range(repeats)], cfg.out, config.baselines,
                              config.references, config.selection, {n: m.select for n, m in config.methods.items() if m.select})
        print(f"wrote {extra['repeats_md']} ({repeats} split seeds from {config.seed})")
    paths = first["paths"]
    print(f"wrote {paths['metrics']} and {paths['report']}")
    print_deployed(first["result"], first["deployed"])
    return first["result"]


def print_deployed(result, written: dict) -> None:
    """One line per task on the deploy step: the monitor file and what it configures, or why there is none."""
    method = result.config.deploy_method
    for task in result.tasks:
        if task not in written:
            if method is not None and method not in result.tasks[task].methods:
                print(f"no monitor file for task {task!r}: {method} was not evaluated, as its stores lack what it reads "
                      f"({result.tasks[task].left_out or 'see report.md'})")
            elif method is not None:
                print(f"no monitor file for task {task!r}: {method} has no deployable row (report.md says why)")
            continue
        chosen = read_monitor_file(written[task])
        spec, member = chosen["spec"], (chosen.get("evaluated") or {}).get("selected")
        print(f"deployed {method}{f' (member {member})' if member else ''} for task {task!r}: {spec.rule} of "
              f"{', '.join(f'{n} (window {w})' for n, w in spec.windows.items())}, {spec.threshold_type} thresholds"
              f"{' (joint)' if spec.joint else ''} -> {written[task]}\n"
              f"  next: python -m launch.fit data=<successful rollouts> out=<monitor dir> monitor_file={written[task]}, "
              "then launch.calibrate data=<other successful rollouts> monitor_dir=<monitor dir> delta=<δ>")


@hydra.main(config_path="conf", config_name="evaluate", version_base=None)
def main(cfg: DictConfig) -> None:
    with reported():
        run(cfg)


if __name__ == "__main__":
    main()
