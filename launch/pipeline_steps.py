"""The pipeline's stages as entry point calls: each stage's module, config and overrides, built from the pipeline's
config and run directory (every stage's inputs and outputs named inside ``run_dir``)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from fiper.evaluation.deploy import monitor_file_name
from launch import act, calibrate, collect, evaluate, fit, stress, train
from launch.common import plain
from launch.stages import Step, override_literal

ACT_STAGE = "act on the chosen monitor's alarms"


def stage_steps(cfg: DictConfig, run_dir: Path, choice: Path | None) -> dict[str, list[Step]]:
    """Every stage's entry point calls; ``choice`` is the evaluation's monitor file (a placeholder before it exists)."""
    r, env = cfg.rollouts, [f"env={cfg.task}", *list(cfg.env_overrides)]
    threads = f"cpu_threads={override_literal(cfg.cpu_threads)}"
    policy, monitor, chosen, report = run_dir / "policy", run_dir / "monitor", run_dir / "monitor_chosen", run_dir / "evaluation"
    # the trained checkpoint, or the user's external policy (then collect and train are skipped)
    policy_arg = f"policy_factory={override_literal(cfg.policy_factory)}" if cfg.get("policy_factory") else f"policy_dir={policy}"
    fit_store, cal_store, stress_store = run_dir / "id_fit.zarr", run_dir / "id_calibration.zarr", run_dir / "stress.zarr"
    factories = f"++factories={override_literal(plain(r.factories))}"  # ++: new keys in the stress config's empty mapping
    bars = f"progress={override_literal(cfg.progress)}"
    common = [*env, threads, bars, factories, policy_arg, f"num_samples={r.num_samples}", f"device={cfg.device}", f"execute={r.execute}",
              "cells=[[none,[0.0]]]"]
    m = plain(cfg.monitor)
    choice = choice or report / monitor_file_name("TASK")  # a placeholder for validation
    return {
        "collect": [Step(collect, "collect", [f"expert={override_literal(cfg.collect.expert)}", *env, f"n_episodes={cfg.collect.n_episodes}",
                                              f"out={run_dir / 'demos.zarr'}",
                                              f"seed={cfg.seed}", "overwrite=true", bars])],
        "train": [Step(train, "train", [f"data={demo_store(cfg, run_dir)}", f"policy={cfg.train.policy}", f"out={policy}",
                                        f"policy.n_action_steps={cfg.train.n_action_steps}", *list(cfg.train.overrides),
                                        f"train.steps={cfg.train.steps}", f"train.batch_size={cfg.train.batch_size}",
                                        f"train.device={cfg.device}", f"train.seed={cfg.seed}", f"train.cpu_threads={cfg.cpu_threads}",
                                        f"train.{bars}"])],
        "fit rollouts": [Step(stress, "stress", [*common, f"out={fit_store}", "seeds.start=10000", f"seeds.count={r.fit_episodes}"])],
        "calibration rollouts": [Step(stress, "stress", [*common, f"out={cal_store}", "seeds.start=20000",
                                                         f"seeds.count={r.calibration_episodes}"])],
        "fit + calibrate monitor": [
            Step(fit, "fit", [threads, f"data={fit_store}", policy_arg, f"out={monitor}", f"num_samples={r.num_samples}",
                              f"device={cfg.device}", "overwrite=true", *(f"++monitor.{k}={override_literal(v)}" for k, v in m.items())]),
            Step(calibrate, "calibrate", [threads, f"data={cal_store}", policy_arg, f"monitor_dir={monitor}",
                                          f"delta={m['delta']}",  # threshold type and joint flag: the fitted spec's
                                          f"device={cfg.device}"])],
        "stress rollouts": [Step(stress, "stress", [*env, threads, bars, factories, policy_arg, f"monitor_dir={monitor}", f"out={stress_store}",
                                                    f"device={cfg.device}", f"execute={r.execute}", f"cells={override_literal(plain(r.cells))}",
                                                    "seeds.start=30000", f"seeds.count={r.seeds_per_cell}"])],
        "evaluate": [Step(evaluate, "evaluate", [threads, bars, f"rollouts=[{fit_store},{cal_store},{stress_store}]", f"out={report}",
                                                 f"device={cfg.device}", f"seed={cfg.seed}", *evaluate_overrides(cfg)])],
        "fit + calibrate the chosen monitor": [
            Step(fit, "fit", [threads, f"data={fit_store}", policy_arg, f"out={chosen}", f"monitor_file={choice}",
                              f"device={cfg.device}", "overwrite=true"]),  # its own output, set aside on a rerun
            Step(calibrate, "calibrate", [threads, f"data={cal_store}", policy_arg, f"monitor_dir={chosen}",
                                          f"delta={cfg.deploy_delta}", f"device={cfg.device}"])],
        **({ACT_STAGE: [Step(act, "act", _act_overrides(cfg, run_dir, [*env, threads, factories, policy_arg]))]} if cfg.get("act") else {}),
    }


def evaluate_overrides(cfg: DictConfig) -> list[str]:
    """launch.evaluate's settings from the pipeline: the δ grid and split, the scores configured as the live monitor's
    (one definition of, e.g., the action entries ACE reads), then ``evaluate.overrides``, which win."""
    e = cfg.evaluate
    scores = plain(cfg.monitor).get("scores") or {}
    return [*([f"deltas={override_literal(plain(e.deltas))}"] if e.deltas is not None else []),
            f"split.fit={e.split.fit}", f"split.calibration={e.split.calibration}",
            *(f"++scores.{name}={override_literal(spec)}" for name, spec in scores.items()), *list(e.overrides)]


def _act_overrides(cfg: DictConfig, run_dir: Path, common: list[str]) -> list[str]:
    """launch.act's overrides for the act stage: the outcome sweep on the chosen monitor, with videos; the collect
    stage's expert, whose episodes its check of seeded resets replays (as the pipeline's own check before anything runs)."""
    a = cfg.act
    collects = not (cfg.get("policy_factory") or cfg.collect.get("demos"))
    expert = [f"expert={override_literal(cfg.collect.expert)}"] if collects else []  # before env_overrides: theirs wins, as in collect
    return [*expert, *common, f"monitor_dir={run_dir / 'monitor_chosen'}", f"out={run_dir / 'act'}", f"device={cfg.device}",
            f"execute={cfg.rollouts.execute}", f"cells={override_literal(plain(a.cells))}", f"seeds.start={a.seeds_start}",
            f"seeds.count={a.seeds_per_cell}", f"responses={override_literal(plain(a.responses))}", f"videos={override_literal(a.videos)}",
            *([f"video_size={int(a.video_size)}"] if a.get("video_size") is not None else []), "progress=false", *list(a.overrides)]


def demo_store(cfg: DictConfig, run_dir: Path) -> Path:
    """The demonstrations the policy trains on: ``collect.demos`` when given, else the collect stage's store."""
    return Path(cfg.collect.demos) if cfg.collect.get("demos") else run_dir / "demos.zarr"
