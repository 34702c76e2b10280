"""Run every stage on the default task: python -m launch.pipeline (what `make demo` runs).

    collect demos -> train policy -> record in-distribution rollouts (fit, calibration)
    -> fit + calibrate the live monitor -> monitored stress rollouts -> offline evaluation
    -> fit + calibrate the monitor the evaluation chose (monitor_chosen/, for your control loop)
    -> act on its alarms: a small outcome sweep with videos (act/, a section of the evaluation's report.md)

Each stage composes its own entry point's config (launch/conf/<stage>.yaml) with overrides and
calls that entry point's ``run``; outputs land in ``run_dir``. Every stage config is composed and
validated before anything is created. A finished stage records, in ``<output>.done``, the
fingerprint of its resolved configs and of its inputs (the files and upstream stages it read); a
rerun reuses the stage only when that fingerprint is unchanged, else it says which keys changed,
moves the old output to run_dir/replaced/ and runs the stage again, and so every stage downstream of it.
``pipeline_config.yaml`` is written when every stage is done, so it describes the outputs beside it.
``policy_factory=my_pkg.policies:load`` runs the stages from the rollouts on with a policy from another
stack (docs/adapters.md) instead of collecting demos and training one.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import hydra
from hydra import compose
from omegaconf import DictConfig

from calibration import InsufficientCalibrationError
from calibration.thresholds import THRESHOLD_KINDS
from fiper.control.monitored_policy import EXECUTED_CHUNKS
from fiper.atomic import write_atomic
from fiper.evaluation.deploy import MONITOR_FILES, monitor_file_name
from fiper.evaluation.render.outcome import outcome_section, put_section
from fiper.evaluation.rollouts import task_name
from fiper.fingerprint import directory_digest, file_digest
from fiper.monitor.decision_data import successful_in_distribution
from fiper.monitor.identity import policy_fingerprint
from fiper.scores.observations import observed_keys
from fiper.storage import EpisodeStore
from launch import act, collect, evaluate, fit, stress
from launch.common import call_policy_factory, plain, removed_on_failure, resolve_device, save_config, set_cpu_threads
from launch.pipeline_checks import (check_act_stage, check_action_dims, check_env, check_list_quoting, evaluate_mapping,
                                     hydra_stated_keys, override)
from launch.pipeline_sizes import check_recorded_successes, check_sizes
from launch.pipeline_steps import ACT_STAGE, demo_store, evaluate_overrides, stage_steps as _steps
from launch.stages import CODE_CHANGES, Stages, Step, replaced_note, store_digest
from launch.validate import (boolean, cells, choice, existing_path, integer, list_of, mapping_of_text, optional, positive_int, probability,
                             reported, seed, target, text, validate)
from policies.resume import SAMPLING_ONLY, record_sampling, sampling_split
from policies.training import has_checkpoint

__all__ = ["Stages", "Step", "check_action_dims", "check_list_quoting", "checkpoint_mismatch", "chosen_monitor_file",
           "evaluate_overrides", "run", "validate_all"]

CHECKS = {
    "run_dir": text, "task": text, "env_overrides": list_of(override, non_empty=False, example="['env.obs_mode=image']"),
    "device": text, "cpu_threads": optional(positive_int), "seed": seed, "progress": boolean,
    "collect.n_episodes": positive_int, "collect.expert": target, "collect.demos": optional(existing_path("demonstration store")),
    "rollouts.factories": mapping_of_text,
    "train.policy": text, "train.steps": positive_int, "train.batch_size": positive_int, "train.n_action_steps": positive_int,
    "train.overrides": list_of(text, non_empty=False, example="['policy.image_downsample=2']"),
    "train.checkpoint": optional(text), "train.checkpoint_task": optional(text),
    "rollouts.num_samples": positive_int, "rollouts.execute": choice(*EXECUTED_CHUNKS),
    "rollouts.fit_episodes": positive_int, "rollouts.calibration_episodes": positive_int,
    "monitor.delta": probability, "monitor.threshold_type": choice(*THRESHOLD_KINDS), "monitor.joint": boolean,
    "rollouts.cells": cells, "rollouts.seeds_per_cell": positive_int,
    "deploy_delta": optional(probability), "code_changes": choice(*CODE_CHANGES),
    "policy_factory": optional(target),
    "evaluate": evaluate_mapping, "evaluate.deltas": optional(evaluate.CHECKS["deltas"]),
    "evaluate.split.fit": probability, "evaluate.split.calibration": probability,
    "evaluate.overrides": list_of(override, non_empty=False, example="['deploy_method=fiper']"),
    "act.cells": cells, "act.seeds_per_cell": positive_int, "act.seeds_start": seed, "act.responses": act.response_names,
    "act.videos": boolean, "act.video_size": optional(integer(16, example=160)), "act.overrides": list_of(text, non_empty=False, example="['response_configs.steer.steering.guide_scale=40.0']"),
}
CONFIG_FILE = "pipeline_config.yaml"


def _checkpoint_source(cfg: DictConfig) -> Path | None:
    if not cfg.train.checkpoint:
        return None
    source = Path(hydra.utils.to_absolute_path(cfg.train.checkpoint))
    if not source.exists():  # a path inside the repository, wherever the pipeline was started
        source = Path(__file__).resolve().parents[1] / cfg.train.checkpoint
    if not source.exists():
        raise FileNotFoundError(f"train.checkpoint={cfg.train.checkpoint} does not exist; set train.checkpoint=null to train a policy")
    return source


def _run_train_config(train_cfg: DictConfig) -> dict[str, Any]:
    """The TrainConfig the train stage's config gives, as a dict."""
    policy = hydra.utils.instantiate(train_cfg.policy, _convert_="all")
    return hydra.utils.instantiate(train_cfg.train, policy=policy, _convert_="all").to_dict()


def checkpoint_mismatch(source: Path, demos: Path, train_cfg: DictConfig, checkpoint_task: str | None) -> list[str]:
    """Why the checkpoint is not what this run would train on these demos (empty: it is); SAMPLING_ONLY fields may differ."""
    meta = json.loads((source / "config.json").read_text())
    store = EpisodeStore.open(demos)
    task = store.attrs.get("task") or (store.attrs.get("collect_config", {}).get("env", {}) or {}).get("name")
    have = {k: tuple(store.data_array(k).shape[1:]) for k in observed_keys(store)}  # what training reads
    want = {k: tuple(v) for k, v in meta["obs_shapes"].items()}
    action_dim = int(store.data_array("action").shape[1])
    reasons = []
    if checkpoint_task is not None and task != checkpoint_task:
        reasons.append(f"it was trained for task {checkpoint_task!r}, this run's demos are task {task!r}")
    if want != have:
        reasons.append(f"it reads observations {want}, the demos hold {have}")
    if int(meta["action_dim"]) != action_dim:
        reasons.append(f"its action has {meta['action_dim']} dims, the demos' {action_dim}")
    config = _run_train_config(train_cfg)
    saved = json.loads((source / "train_config.json").read_text()) if (source / "train_config.json").exists() else {}
    trained = {**{f"policy.{k}": v for k, v in saved.get("policy", {}).items()}, **{k: v for k, v in saved.items() if k != "policy"}}
    asked = {**{f"policy.{k}": v for k, v in config["policy"].items()}, **config}
    learned = [k for k in trained if k.startswith("policy.") and k.removeprefix("policy.") not in SAMPLING_ONLY]
    for key in learned + ["steps", "batch_size", "lr", "weight_decay", "warmup_steps", "ema_decay", "seed"]:
        if key in trained and json.dumps(trained[key]) != json.dumps(asked.get(key)):
            reasons.append(f"it was trained with {key}={trained[key]!r}, this run asks for {asked.get(key)!r}")
    return reasons


def trained_checkpoint(cfg: DictConfig, demos: Path, train_step: Step) -> Path | None:
    """train.checkpoint when it is what training on ``demos`` would give, else None (then the pipeline trains). The user's
    own demonstrations (collect.demos) are always trained on: the checkpoint learned from other ones."""
    source = _checkpoint_source(cfg)
    if source is None:
        return None
    reasons = (["collect.demos is given, and the checkpoint was trained on other demonstrations"] if cfg.collect.get("demos")
               else checkpoint_mismatch(source, demos, train_step.compose(), cfg.train.get("checkpoint_task")))
    if reasons:
        print(f"[train] not using train.checkpoint={cfg.train.checkpoint}: {'; '.join(reasons)}. "
              f"Training a policy from the {'given' if cfg.collect.get('demos') else 'collected'} demos instead "
              f"(train.steps={cfg.train.steps})", flush=True)
        return None
    return source


def _train(cfg: DictConfig, step: Step, source: Path | None, out: Path) -> None:
    """Copy the checkpoint into ``out``, with this run's sampling-only settings recorded there, or train one."""
    if source is not None:
        shutil.copytree(source, out, dirs_exist_ok=True)
        sampling = sampling_split(json.loads((source / "config.json").read_text())["policy"], _run_train_config(step.compose())["policy"])[0]
        record_sampling(out, sampling)  # in the copy: the checkpoint itself is left as it is
        taken = ", ".join(f"{k}={run!r} (the checkpoint's: {was!r})" for k, (was, run) in sampling.items())
        print(f"[train] using the trained checkpoint {source} (train.checkpoint)" + (f" with this run's sampling-only settings "
              f"{taken}, recorded in {out / 'config.json'}" if taken else ""), flush=True)
        return
    resume = ["resume=true"] if has_checkpoint(out) else []  # an interrupted run of the same fingerprint
    step.module.run(compose(config_name=step.config_name, overrides=[*step.overrides, *resume]))


def validate_all(cfg: DictConfig, run_dir: Path) -> None:
    """The pipeline's keys and every stage's composed config, and the env's control period (one env built), before anything
    is created (paths do not exist yet)."""
    validate(cfg, CHECKS, "pipeline")
    policy = None  # the settings of the policy the pipeline trains (obs_keys, encoder, ...); None: it trains none
    expert = None  # the expert the collect stage runs, as composed (collect.expert, or an env_overrides' expert=)
    monitor, evaluation = None, None  # the live monitor's spec and the evaluation's config, for the rollout counts
    for stage, steps in _steps(cfg, run_dir, None).items():
        if stage in ("fit + calibrate the chosen monitor", ACT_STAGE) and cfg.deploy_delta is None:
            continue
        for step in steps:
            composed = step.compose()
            validate(composed, step.module.CHECKS, f"{step.config_name} (pipeline stage '{stage}')", check_paths=False)
            if stage == "fit + calibrate monitor" and step.module is fit:
                monitor = {**plain(composed.monitor), "delta": cfg.monitor.delta}
            if step.module is evaluate:
                evaluation = evaluate.evaluation_config(composed, device="cpu")
            if step.module in (stress, act):  # every cell's shift can be built, before anything runs
                try:
                    stress.check_factories(plain(composed.env), plain(composed.factories), [c[0] for c in plain(composed.cells)])
                except ValueError as err:
                    cells_key = "act.cells" if step.module is act else "rollouts.cells"
                    raise ValueError(f"pipeline stage '{stage}': {err} (in the pipeline: rollouts.factories.<shift>, {cells_key})") from None
            if step.module is collect and not cfg.get("policy_factory") and not cfg.collect.get("demos"):  # nothing collected
                expert = composed.expert
            if stage == "train":
                policy = None if cfg.get("policy_factory") else plain(composed.policy)
            if stage == "fit rollouts":  # the env's seconds per step and observation layout, before anything is collected or trained
                check_env(plain(composed.env), plain(composed.factories), policy, cfg)
            if step.module is act:  # every response builds and binds, the env's seeds repeat and it renders, before anything runs
                check_act_stage(composed, stage, expert)
    check_sizes(cfg, monitor or plain(cfg.monitor), evaluation)
    _checkpoint_source(cfg)


def _evaluation_config(steps: dict[str, list[Step]]):
    """The evaluate stage's EvaluationConfig as it will be composed (for the rollout counts)."""
    return evaluate.evaluation_config(steps["evaluate"][0].compose(), device="cpu")


def chosen_monitor_file(report_dir: Path, stress_store: Path) -> Path:
    """The monitor file launch.evaluate wrote for the stress rollouts' task; a loud error when it wrote none."""
    task = task_name(EpisodeStore.open(stress_store).attrs, stress_store)
    path = report_dir / monitor_file_name(task)
    if not path.exists():
        found = sorted(p.name for p in report_dir.glob(MONITOR_FILES))
        raise FileNotFoundError(
            f"deploy stage: launch.evaluate wrote no {path.name} for task {task!r} in {report_dir} (monitor files there: {found or 'none'}); "
            "its deploy_method found no guaranteed threshold type, or is null (see the Deploy section of report.md). "
            "Set deploy_delta=null to skip this stage, or choose another method with \"evaluate.overrides=['deploy_method=<method>']\""
        )
    return path


def run(cfg: DictConfig) -> Path:
    run_dir = Path(cfg.run_dir)
    validate_all(cfg, run_dir)
    set_cpu_threads(cfg.cpu_threads)
    with removed_on_failure(run_dir, keep=lambda p: any(p.iterdir())):
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / CONFIG_FILE).unlink(missing_ok=True)  # written again when every stage matches it
        report = _run_stages(cfg, run_dir)
        save_config(cfg, run_dir, CONFIG_FILE)
    if note := replaced_note(run_dir):
        print(f"note: {note}", flush=True)
    return report


def _run_stages(cfg: DictConfig, run_dir: Path) -> Path:
    stages, steps = Stages(run_dir, cfg.get("code_changes", "rerun")), _steps(cfg, run_dir, None)
    demos, policy, monitor = demo_store(cfg, run_dir), run_dir / "policy", run_dir / "monitor"
    fit_store, cal_store, stress_store = run_dir / "id_fit.zarr", run_dir / "id_calibration.zarr", run_dir / "stress.zarr"
    report_dir, chosen = run_dir / "evaluation", run_dir / "monitor_chosen"

    def stage(name: str, output: Path, inputs: dict[str, Any], work: Callable[[], Any] | None = None) -> Path:
        todo = steps[name]
        return stages.run(name, output, stages.fingerprint(todo, inputs), work or (lambda: [s.module.run(s.compose()) for s in todo]))

    if cfg.get("policy_factory"):  # an external policy: nothing to collect or train
        print(f"[collect, train] skipped: every stage loads policy_factory={cfg.policy_factory}", flush=True)
        weights = {"policy factory": cfg.policy_factory,
                   "policy weights": policy_fingerprint(call_policy_factory(cfg.policy_factory, resolve_device(cfg.device)))}
    else:
        if cfg.collect.get("demos"):  # the user's demonstrations: nothing to collect
            print(f"[collect] skipped: training from collect.demos={demos}", flush=True)
            demos_record = {"demos": store_digest(demos)}
        else:
            stage("collect", demos, {})
            demos_record = stages.upstream(demos)
        check_action_dims(cfg, demos, hydra_stated_keys())
        source = trained_checkpoint(cfg, demos, steps["train"][0])
        stage("train", policy, {**demos_record, "checkpoint": directory_digest(source)},
              lambda: _train(cfg, steps["train"][0], source, policy))
        weights = {"policy weights": directory_digest(policy), **stages.upstream(policy)}
    stage("fit rollouts", fit_store, weights)
    fit_successes = check_fit_successes(fit_store)
    stage("calibration rollouts", cal_store, weights)
    check_recorded_successes(cfg, _evaluation_config(steps), fit_successes,
                             check_fit_successes(cal_store, "the live monitor", "rollouts.calibration_episodes: more calibration rollouts"))
    with calibration_hint("live monitor stage", "monitor.delta", cfg.monitor.delta):
        stage("fit + calibrate monitor", monitor, {**weights, **stages.upstream(fit_store, cal_store)})
    stage("stress rollouts", stress_store, {**weights, "monitor": directory_digest(monitor), **stages.upstream(monitor)})
    with calibration_hint("evaluate stage", "evaluate.deltas", plain(cfg.evaluate.deltas),
                          f", evaluate.split.calibration (now {cfg.evaluate.split.calibration:g})"):
        stage("evaluate", report_dir, stages.upstream(fit_store, cal_store, stress_store))
    if cfg.get("deploy_delta") is None:
        if chosen.exists() or Stages.marker(chosen).exists():
            print(f"[deploy] deploy_delta=null: removing {chosen} of an earlier run", flush=True)
            Stages._remove(chosen, Stages.marker(chosen))
        _act_stage(cfg, stages, steps, run_dir, weights, "deploy_delta=null: there is no deployed monitor to act on")
        return report_dir / "report.md"
    choice = chosen_monitor_file(report_dir, stress_store)
    steps = {**steps, "fit + calibrate the chosen monitor": _steps(cfg, run_dir, choice)["fit + calibrate the chosen monitor"]}
    with calibration_hint("deploy stage", "deploy_delta", cfg.deploy_delta):
        stage("fit + calibrate the chosen monitor", chosen,
              {**weights, "monitor file": file_digest(choice), **stages.upstream(fit_store, cal_store, report_dir)})
    _act_stage(cfg, stages, steps, run_dir, weights, None if cfg.get("act") else "act=null")
    return report_dir / "report.md"


def check_fit_successes(store: Path, before: str = "the calibration rollouts",
                        more: str = "rollouts.fit_episodes: more fit rollouts") -> int:
    """The number of the rollouts' in-distribution successes, which the monitor learns from (the fit rollouts', then the
    calibration rollouts'): without one, stop before ``before``, which could not use them, naming the setting ``more``."""
    try:
        return len(successful_in_distribution(EpisodeStore.open(store)))
    except ValueError as err:
        raise ValueError(f"{err}. The pipeline stopped before {before}; the stages before them are cached ({more})") from None


@contextmanager
def calibration_hint(where: str, delta_key: str, delta: Any, also: str = "") -> Iterator[None]:
    """A δ (or a grid of them) the calibration successes cannot attain, named with the pipeline keys that fix it."""
    try:
        yield
    except InsufficientCalibrationError as err:
        now = (f"{delta:g}" if isinstance(delta, (int, float)) else "null: launch/conf/evaluate.yaml's grid" if delta is None
               else str(delta))
        raise InsufficientCalibrationError(
            f"{where}: {err} In the pipeline: raise rollouts.calibration_episodes (only the successful ones calibrate){also} "
            f"or {delta_key} (now {now}); the stages before this one are cached and are not run again") from None


def _act_stage(cfg: DictConfig, stages: Stages, steps: dict[str, list[Step]], run_dir: Path, weights: dict[str, Any],
               skipped: str | None) -> None:
    """The outcome sweep on the chosen monitor (run_dir/act), its table put into the evaluation's report.md; when
    ``skipped`` says why not, an earlier run's act/ and section are removed."""
    out, chosen, report = run_dir / "act", run_dir / "monitor_chosen", run_dir / "evaluation" / "report.md"
    section = out / "report_section.md"
    if skipped is not None:
        if out.exists() or Stages.marker(out).exists():
            print(f"[act] {skipped}: removing {out} of an earlier run", flush=True)
            Stages._remove(out, Stages.marker(out))
        put_section(report, None)
        return
    step = steps[ACT_STAGE][0]

    def work() -> None:
        outcome = step.module.run(step.compose())
        videos = {n: f"../act/videos/{n}.mp4" for n in outcome.overall if (out / "videos" / f"{n}.mp4").exists()}
        write_atomic(section, outcome_section(outcome, source="../act/outcome.md", videos=videos))

    inputs = {**weights, "monitor": directory_digest(chosen), **stages.upstream(chosen)}
    stages.run(ACT_STAGE, out, stages.fingerprint([step], inputs), work)
    put_section(report, section.read_text())  # cached or not: the report has the section once


@hydra.main(config_path="conf", config_name="pipeline", version_base=None)
def main(cfg: DictConfig) -> None:
    with reported():
        report = run(cfg)
    print(report.resolve())


if __name__ == "__main__":
    check_list_quoting(sys.argv[1:])
    main()
