"""Run every stage on the default task: python -m launch.pipeline (what `make demo` runs).

    collect demos -> train policy -> record in-distribution rollouts (fit, calibration)
    -> fit + calibrate the live monitor -> monitored stress rollouts -> offline evaluation
    -> fit + calibrate the monitor the evaluation chose (monitor_chosen/, for your control loop)

Each stage composes its own entry point's config (launch/conf/<stage>.yaml) with overrides and
calls that entry point's ``run``; outputs land in ``run_dir`` and a stage whose output has a
``.done`` marker is skipped, so a rerun only does what is missing.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
from hydra import compose
from omegaconf import DictConfig, OmegaConf

from launch import calibrate, collect, evaluate, fit, stress, train
from launch.common import plain, save_config, set_cpu_threads


def _stage(name: str, output: Path, work: Callable[[], Any]) -> Path:
    marker = output.with_name(output.name + ".done")
    if marker.exists():
        print(f"[{name}] cached: {output}")
        return output
    start = time.perf_counter()
    print(f"[{name}] running -> {output}", flush=True)
    work()
    marker.write_text(f"{time.perf_counter() - start:.1f} s\n")
    print(f"[{name}] done in {time.perf_counter() - start:.0f} s", flush=True)
    return output


def _run(module: Any, config_name: str, overrides: list[str]) -> Any:
    return module.run(compose(config_name=config_name, overrides=overrides))


def _list(value: Any) -> str:
    """A python value as a hydra override literal (flow style: {k: v}, [a, b], null)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_list(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_list(v) for v in value) + "]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _train(cfg: DictConfig, out: Path) -> None:
    if cfg.train.checkpoint:
        source = Path(hydra.utils.to_absolute_path(cfg.train.checkpoint))
        if not source.exists():  # a path inside the repository, wherever the pipeline was started
            source = Path(__file__).resolve().parents[1] / cfg.train.checkpoint
        if not source.exists():
            raise FileNotFoundError(f"train.checkpoint={source} does not exist; set train.checkpoint=null to train a policy")
        shutil.copytree(source, out, dirs_exist_ok=True)
        print(f"[train] using the trained checkpoint {source} (train.checkpoint)")
        return
    _run(train, "train", [f"data={out.parent / 'demos.zarr'}", f"policy={cfg.train.policy}", f"out={out}",
                          f"policy.n_action_steps={cfg.train.n_action_steps}", *list(cfg.train.overrides),
                          f"train.steps={cfg.train.steps}", f"train.batch_size={cfg.train.batch_size}",
                          f"train.device={cfg.device}", f"train.seed={cfg.seed}", f"train.cpu_threads={cfg.cpu_threads}"])


def run(cfg: DictConfig) -> Path:
    set_cpu_threads(cfg.cpu_threads)
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir, "pipeline_config.yaml")
    r, env = cfg.rollouts, [f"env={cfg.task}", *list(cfg.env_overrides)]
    threads = f"cpu_threads={_list(cfg.cpu_threads)}"
    _stage("collect", run_dir / "demos.zarr", lambda: _run(collect, "collect", [
        *env, f"n_episodes={cfg.collect.n_episodes}", f"out={run_dir / 'demos.zarr'}", f"seed={cfg.seed}", "overwrite=true"]))
    policy = _stage("train", run_dir / "policy", lambda: _train(cfg, run_dir / "policy"))
    common = [*env, threads, f"policy_dir={policy}", f"num_samples={r.num_samples}", f"device={cfg.device}", f"select={r.select}",
              "cells=[[none,[0.0]]]"]
    fit_store = _stage("fit rollouts", run_dir / "id_fit.zarr", lambda: _run(stress, "stress", [
        *common, f"out={run_dir / 'id_fit.zarr'}", f"seeds.start={10_000}", f"seeds.count={r.fit_episodes}"]))
    cal_store = _stage("calibration rollouts", run_dir / "id_calibration.zarr", lambda: _run(stress, "stress", [
        *common, f"out={run_dir / 'id_calibration.zarr'}", f"seeds.start={20_000}", f"seeds.count={r.calibration_episodes}"]))
    m = plain(cfg.monitor)
    monitor_dir = _stage("fit + calibrate monitor", run_dir / "monitor", lambda: (
        _run(fit, "fit", [threads, f"data={fit_store}", f"policy_dir={policy}", f"out={run_dir / 'monitor'}", f"num_samples={r.num_samples}",
                          f"device={cfg.device}", f"monitor.rule={m['rule']}", f"monitor.windows={_list(m['windows'])}",
                          f"monitor.scores={_list(m['scores'])}"]),
        _run(calibrate, "calibrate", [threads, f"data={cal_store}", f"policy_dir={policy}", f"monitor_dir={run_dir / 'monitor'}",
                                      f"delta={r.delta}", f"kind={r.threshold}", f"joint={str(bool(r.get('joint', False))).lower()}",
                                      f"device={cfg.device}"])))
    stress_store = _stage("stress rollouts", run_dir / "stress.zarr", lambda: _run(stress, "stress", [
        *env, threads, f"policy_dir={policy}", f"monitor_dir={monitor_dir}", f"out={run_dir / 'stress.zarr'}", f"device={cfg.device}",
        f"select={r.select}",
        f"cells={_list(plain(r.cells))}", "seeds.start=30000", f"seeds.count={r.seeds_per_cell}"]))
    report_dir = run_dir / "evaluation"
    _stage("evaluate", report_dir, lambda: _run(evaluate, "evaluate", [
        threads, f"rollouts=[{fit_store},{cal_store},{stress_store}]", f"out={report_dir}", f"device={cfg.device}", f"seed={cfg.seed}",
        *list(cfg.evaluate)]))
    choice = report_dir / f"monitor_{cfg.task}.yaml"
    if cfg.get("deploy_delta") is not None and choice.exists():
        chosen = run_dir / "monitor_chosen"  # the configuration the evaluation chose, ready for the control loop
        _stage("fit + calibrate the chosen monitor", chosen, lambda: (
            _run(fit, "fit", [threads, f"data={fit_store}", f"policy_dir={policy}", f"out={chosen}", f"monitor_file={choice}",
                              f"device={cfg.device}"]),
            _run(calibrate, "calibrate", [threads, f"data={cal_store}", f"policy_dir={policy}", f"monitor_dir={chosen}",
                                          f"delta={cfg.deploy_delta}", f"device={cfg.device}"])))
    return report_dir / "report.md"


@hydra.main(config_path="conf", config_name="pipeline", version_base=None)
def main(cfg: DictConfig) -> None:
    report = run(cfg)
    print(report.resolve())


if __name__ == "__main__":
    main()
