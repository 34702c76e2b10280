"""The outcome sweep: python -m launch.act policy_dir=<dir> monitor_dir=<deployed monitor> out=<directory>.

``policy_factory=my_pkg.policies:load`` (called with ``device=``, returning a GenerativePolicy) replaces
``policy_dir`` for a policy from another stack (docs/adapters.md), as in launch.stress.

Every (shift, severity, seed) runs once without fiper and once with the monitor under each response of
``responses`` (hold, stop, retreat, hand-over, steer, graded steer -> hold, or any preset, registered
response kind or registered fallback by name), interleaved seed by seed so that decisions are timed under the same load. Each arm
records into its own store in ``out`` (``without.zarr``, ``<response>.zarr``) with launch.stress's
fingerprint, so an interrupted sweep resumes and a changed setting is refused. Then the episodes are
paired and labelled (``fiper.control.outcome``) into a terminal table, outcome.md, outcome.json and
outcome.png (docs/interventions.md, "Outcome sweep"). ``videos=true`` re-runs, per response, the first
episode in which the monitor alarmed, rendered, into ``videos/<response>.mp4`` (``launch.act_videos``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from fiper.env_factory import env_task_name, resolve
from fiper.env_io import observation_dict
from fiper.control import FailSafeError, MonitoredPolicy, RolloutRecorder, run_episode
from fiper.control.failsafe import fault_owner
from fiper.control.period import control_period_s
from fiper.control.seeded_resets import check_seeded_resets
from fiper.control.sweep import SweepSummary, check_period, note_meta, recorded_episodes
from fiper.evaluation.outcome import outcome_report, store_paths
from fiper.evaluation.render.outcome import outcome_table, write_outcome
from fiper.gym_api import reset_env
from fiper.interventions import FALLBACKS, building
from fiper.interventions.context import uses_positions
from fiper.monitor import load_monitor
from launch.act_videos import check_rendering, write_videos
from launch.common import check_guidance, load_policy_from, plain, resolve_device, save_config, set_cpu_threads
from launch.stress import (SWEEP_CHECKS, action_context, built_response, check_observations, check_steering_layout,
                           deadline_report, deadline_settings, env_builder, needs_context, probe_response, store_fingerprint,
                           under_deadlines)
from launch.validate import (ENV_CHECKS, RESUMES, THREADS, Bad, boolean, existing_path, integer, merged, optional, reported,
                             target, validate)

PRESETS = Path(__file__).resolve().parent / "conf" / "response"
WITHOUT = "without"  # the arm without fiper; its store is <out>/without.zarr
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def response_names(v: Any, _: bool) -> None:
    """A non-empty list of distinct file-name-safe response names, none of them 'without'."""
    ok = isinstance(v, (list, tuple)) and bool(v) and all(isinstance(n, str) and NAME.match(n) and n != WITHOUT for n in v)
    if not ok or len(set(v)) != len(v):
        raise Bad(f"a non-empty list of distinct names (letters, digits, _ and -; not '{WITHOUT}')", "[hold,retreat]")


CHECKS = merged(ENV_CHECKS, THREADS, SWEEP_CHECKS, {
    "monitor_dir": existing_path("monitor directory"),
    "responses": response_names,
    "plot": boolean,
    "videos": boolean,
    "video_size": integer(16, example=160),
    "expert": optional(target),
})


def unattended(obs, context):
    """A hand-over nobody answers (a sweep has no operator): None, so the robot holds where it is; the store
    flags every such decision ``fallback:hand_over``."""
    return None


def response_kinds() -> list[str]:
    """Response kinds ``response_from_config`` builds by ``kind`` (graded, return_retry, register_response's), where it has them."""
    return [k for k in getattr(building, "RESPONSES", {}) if k != "graded"]


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS.glob("*.yaml"))


def _preset(name: str) -> dict[str, Any] | None:
    path = PRESETS / f"{name}.yaml"
    return OmegaConf.to_container(OmegaConf.load(path)) if path.is_file() else None


def _missing(value: Any, where: str = "") -> list[str]:
    """Keys left '???' in a response config."""
    if isinstance(value, Mapping):
        return [m for k, v in value.items() for m in _missing(v, f"{where}.{k}" if where else str(k))]
    return [where] if value == "???" else []


def response_config(name: str, configs: Mapping[str, Any]) -> dict[str, Any]:
    """The response config a name stands for, first match: a ``response_configs`` entry (a preset with overrides), a
    preset file, a registered response kind (``{kind: name}``), a registered fallback (``{fallback: {name: name}}``)."""
    if configs.get(name) is not None:  # null: not configured here, the name stands for itself
        entry = dict(configs[name])
        base = {}
        if "preset" in entry:
            base = _preset(str(entry.pop("preset")))
            if base is None:
                raise ValueError(f"response_configs.{name}.preset names no file in {PRESETS}; name one of {preset_names()}")
        config = plain(OmegaConf.merge(OmegaConf.create(base), OmegaConf.create(entry)))
    elif (preset := _preset(name)) is not None:
        config = preset
    elif name in response_kinds():
        config = {"kind": name}
    elif name in FALLBACKS:
        config = {"fallback": {"name": name}}
    else:
        raise ValueError(f"unknown response {name!r}: not a key of response_configs, a preset in {PRESETS} "
                         f"({preset_names()}), a registered response kind ({sorted(response_kinds())}) "
                         f"or a registered fallback ({sorted(FALLBACKS)}); add it as '+response_configs.{name}={{preset: hold}}' "
                         "or register it with fiper.interventions.register_fallback")
    missing = _missing(config)
    if missing:
        raise ValueError(f"response {name!r} leaves {missing} unset: give them as response_configs.{name}.{missing[0]}=<value>")
    return config


def check_responses(configs: Mapping[str, Any], env: Any, where: str) -> dict[str, Any]:
    """Every response built and bound to a reset of ``env``, so that one needing what the env lacks (SceneKeepOut
    reads the env's scene_obstacles(); a safe controller written for another observation) stops before the sweep, not
    at its first episode: a controller is called once on the reset's observation."""
    obs, _ = reset_env(env, 0)
    responses = {}
    for name, config in configs.items():
        responses[name] = built_response(config, f"response_configs.{name}", f"{where}: ", "; launch.pipeline: act.overrides")
        try:
            probe_response(responses[name], env, obs)
        except (TypeError, ValueError, AttributeError) as err:
            raise ValueError(f"{where}: response {name!r} cannot act on this env: {err}. Give the env what it reads, or drop "
                             f"{name!r} from responses (the pipeline's act.responses) or set it up differently "
                             f"(response_configs.{name}, the pipeline's act.overrides)") from None
    return responses


def arm_fingerprint(cfg: DictConfig, response: dict[str, Any] | None, num_samples: int, policy: Any = None) -> dict[str, Any]:
    """launch.stress's store fingerprint for one arm: without fiper (no monitor, no response) or one response; a
    ``policy_factory`` is recorded by its name and the policy's weights fingerprint."""
    keys = ("policy_dir", "policy_factory", "env", "factories", "execute", "context", "record_keys")
    arm = OmegaConf.create({k: plain(cfg.get(k)) for k in keys})
    arm.monitor_dir = cfg.monitor_dir if response is not None else None
    arm.response = response
    deadlines = deadline_settings(cfg)
    if response is not None and deadlines:  # the run without fiper runs without deadlines
        arm.deadline_ms = deadlines
    return store_fingerprint(arm, num_samples, policy)


@contextmanager
def arm_named(name: str) -> Iterator[None]:
    """A FailSafeError raised inside carries the arm it came from (``err.arm``), for the message that names the fix."""
    try:
        yield
    except FailSafeError as err:
        err.arm = name
        raise


def warm_up(agents: Mapping[str, MonitoredPolicy], env, seed: int) -> None:
    """One untimed decision per agent, so that no arm's timing carries the process's first, slow calls."""
    obs, _ = reset_env(env, seed)
    for name, agent in agents.items():
        with arm_named(name):
            agent.reset(seed=seed)
            agent.warm_up(obs, env)


def run_paired(make_env, agents: Mapping[str, MonitoredPolicy], recorders: Mapping[str, RolloutRecorder],
               cells: Sequence[tuple[str, float]], seeds: Sequence[int], *, record_keys=None, progress: bool = True) -> int:
    """Every (cell, seed) in every arm's store, arms interleaved per seed; episodes already recorded are skipped.
    Returns the number of episodes run; prints each arm's notes (actions clipped to the env's action space, terminations
    the env named in words of its own) over every episode of its store."""
    summaries = {name: SweepSummary() for name in agents}
    done = {name: recorded_episodes(rec) for name, rec in recorders.items()}
    todo = {(s, v, ep_seed, name) for s, v in cells for ep_seed in seeds for name in agents
            if (s, round(v, 6), ep_seed) not in done[name]}
    bar = tqdm(total=len(todo), desc="outcome sweep", disable=not progress)
    for shift, severity in cells:
        if not any((shift, severity, ep_seed, name) in todo for ep_seed in seeds for name in agents):
            continue
        env = make_env(shift, severity)
        try:
            for rec in recorders.values():
                check_period(env, rec, shift, severity)
            for ep_seed in seeds:
                for name, agent in agents.items():
                    if (shift, severity, ep_seed, name) not in todo:
                        continue
                    with arm_named(name):
                        result = run_episode(env, agent, seed=ep_seed, record_keys=record_keys,
                                             labels={"shift": shift, "severity": severity})
                    notes = note_meta(result)
                    recorders[name].write(result.steps, result.decisions, result.labels, optional_meta=notes,
                                          optional_data=result.optional_keys)
                    summaries[name].add_episode(result, False, notes)
                    bar.update(1)
                    bar.set_postfix(cell=f"{shift} {severity:g}", arm=name, ok=int(result.success))
        finally:
            env.close()
    bar.close()
    for name, summary in summaries.items():
        recorders[name].finish()
        if recorders[name].store is not None:
            summary.count_notes(recorders[name].store)
        for line in summary.notes():
            print(f"{name}: {line}")
    return len(todo)


@contextmanager
def policy_faults_named() -> Iterator[None]:
    """A fault of the policy itself in the run without fiper (which has no fallback) ends the sweep with its cause and
    the fix, not a traceback; the monitored arms answer faults with their fallback."""
    try:
        yield
    except FailSafeError as err:
        if err.source == "fallback":
            arm = getattr(err, "arm", "?")
            raise ValueError(f"{err}. A fallback that gives no safe action stops the sweep: fix the fallback of response "
                             f"{arm!r} (response_configs.{arm}); the episodes recorded so far are kept and a rerun resumes "
                             "after them") from err
        raise ValueError(f"{err}. In launch.act the run without fiper has no fallback, so a fault stops the sweep: fix "
                         f"{fault_owner(err)} (the cause above); the episodes recorded so far are kept and a rerun resumes "
                         "after them") from err


def run(cfg: DictConfig):
    validate(cfg, CHECKS, "act")
    set_cpu_threads(cfg.cpu_threads)
    names = list(cfg.responses)
    configs = {name: response_config(name, plain(cfg.response_configs) or {}) for name in names}  # every name checked first
    device = resolve_device(cfg.device)
    policy = load_policy_from(cfg, device)
    monitor = load_monitor(cfg.monitor_dir, policy=policy, device=device)
    num_samples = monitor.identity.num_samples  # the run without fiper samples the same B: the same chunks until an alarm
    env_cfg = plain(cfg.env)
    cell_list = [(str(shift), float(sev)) for shift, sevs in plain(cfg.cells) for sev in sevs]
    make_env = env_builder(env_cfg, plain(cfg.factories), [shift for shift, _ in cell_list])
    if cfg.videos:  # an env that cannot render is refused before the sweep, not after it
        check_rendering(env_cfg, plain(cfg.factories), cfg.video_size, " (nothing has run yet)")
    check_seeded_resets(make_env, cell_list, "launch.act (nothing has run yet)", expert=resolve(cfg.expert) if cfg.expert else None)
    probe = make_env("none", 0.0)
    try:
        check_observations(policy, probe, env_cfg)
        period = control_period_s(probe, env_cfg.get("control_period_s"), env_name=str(env_cfg.get("name") or env_cfg.get("factory")))
        responses = check_responses(configs, probe, "launch.act (nothing has run yet)")
        check_guidance(policy, {f"response {n!r}": r for n, r in responses.items()}, "launch.act (nothing has run yet)")
        kinds = {name: uses_positions(r) or r.fallback is None for name, r in responses.items() if needs_context(r)}
        layouts = {kind: action_context(plain(cfg.context), policy.action_dim, probe, positions=kind, period=period)  # one note
                   for kind in set(kinds.values())}
        contexts = {name: dataclasses.replace(layouts[kinds[name]]) if name in kinds else None  # a fresh history each
                    for name in responses}
        seen = observation_dict(reset_env(probe, 0)[0]) if kinds else None  # where a velocity steering's paths start
        for name, r in responses.items():
            check_steering_layout(r, contexts[name], f"response_configs.{name}.steering", obs=seen)
        timed, timed_monitor = under_deadlines(deadline_settings(cfg), policy, monitor, probe, cfg.seeds.start, num_samples)
        agents = {WITHOUT: MonitoredPolicy(policy, None, num_samples=num_samples, execute=cfg.execute, seed=cfg.seeds.start)}
        agents.update({name: MonitoredPolicy(timed, timed_monitor, response=responses[name], context=contexts[name],
                                             num_samples=num_samples, execute=cfg.execute, seed=cfg.seeds.start) for name in names})
        with policy_faults_named():
            warm_up(agents, probe, cfg.seeds.start)
        task = env_task_name(probe, env_cfg.get("name"))  # a user's env: its gymnasium id, as launch.stress records it
    finally:
        probe.close()
    without_path, arm_paths = store_paths(cfg.out, names)
    attrs = {"act_config": plain(cfg), "task": task, "control_period_s": period, "num_samples": num_samples}
    recorders = {WITHOUT: RolloutRecorder(without_path, attrs={**attrs, "response": WITHOUT, "response_type": "none"}, policy=policy,
                                          fingerprint=arm_fingerprint(cfg, None, num_samples, policy), overwrite=cfg.overwrite)}
    for name in names:
        recorders[name] = RolloutRecorder(arm_paths[name], score_names=monitor.names, policy=policy,
                                          attrs={**attrs, "response": name, "response_type": type(responses[name]).__name__},
                                          fingerprint=arm_fingerprint(cfg, configs[name], num_samples, policy), overwrite=cfg.overwrite)
    seeds = list(range(cfg.seeds.start, cfg.seeds.start + cfg.seeds.count))
    with policy_faults_named():
        run_paired(make_env, agents, recorders, cell_list, seeds, record_keys=cfg.record_keys, progress=cfg.progress)
    # every episode of the stores, earlier runs' too; a steering response's reward scored on what each run executed
    report = outcome_report(without_path, arm_paths, task=task, steering=responses, make_env=make_env, contexts=contexts)
    save_config(cfg, cfg.out, "act_config.yaml")
    write_outcome(report, cfg.out, plot=cfg.plot)
    print(outcome_table(report))
    for line in deadline_report(timed, timed_monitor):
        print(line)
    if cfg.videos:
        written = write_videos(env_cfg, plain(cfg.factories), {name: agents[name] for name in names}, arm_paths, cell_list, seeds,
                               Path(cfg.out) / "videos", task=task, size=cfg.video_size, period=period, record_keys=cfg.record_keys)
        for name, line in written.items():
            print(f"video {name}: {line}")
    return report


@hydra.main(config_path="conf", config_name="act", version_base=None)
def main(cfg: DictConfig) -> None:
    with reported(interrupted=RESUMES):
        run(cfg)


if __name__ == "__main__":
    main()
