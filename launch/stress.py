"""Stress-test a trained policy: python -m launch.stress policy_dir=<dir> monitor_dir=<dir> out=<store>.

``policy_factory=my_pkg.policies:load`` (called with ``device=``, returning a GenerativePolicy) replaces
``policy_dir`` for a policy from another stack (docs/adapters.md).

``response=<hold|stop|retreat|steer_keep_out|...>`` (launch/conf/response) acts on the
monitor's alarms during the sweep; the recorder stores what was done at every decision. The store
records the fingerprint of what produced its episodes (``store_fingerprint``); a rerun into it
resumes only with the same fingerprint, else it is refused naming the keys that differ.
"""

from __future__ import annotations

import inspect
import math
import sys
from typing import Any

import hydra
import numpy as np
from omegaconf import DictConfig

from fiper.env_io import observation_dict
from fiper.env_factory import accepts, checked_env, env_task_name, make_env_from_config, named_on_error, resolve, wrapped
from fiper.control import DeadlineMonitor, DeadlinePolicy, FailSafeError, MonitoredPolicy, RolloutRecorder
from fiper.control.failsafe import fault_owner
from fiper.control.monitored_policy import EXECUTED_CHUNKS
from fiper.control.period import control_period_s
from fiper.control.sweep import run_sweep
from fiper.fingerprint import directory_digest, make_fingerprint
from fiper.gym_api import reset_env
from fiper.interventions import FallbackContext, response_from_config
from fiper.interventions.context import ACTION_MODES, refuse_effort, uses_positions
from fiper.interventions.layout import check_steering_layout
from fiper.monitor import load_monitor
from launch.common import check_guidance, load_policy_from, plain, policy_digest, resolve_device, set_cpu_threads
from launch.stages import named_sources
from launch.validate import (ENV_CHECKS, RESUMES, THREADS, boolean, cells, choice, deadlines, existing_path, integer, list_of,
                             mapping_of_text, merged, optional, policy_rules, positive, positive_int, refuse_renamed, reported,
                             seconds_per_step, seed, text, validate)

# what every sweep of rollouts over cells x seeds takes (launch.stress and launch.act)
SWEEP_CHECKS = {
    "env.control_period_s": optional(seconds_per_step),
    **policy_rules(required=True),
    "out": text,
    "execute": choice(*EXECUTED_CHUNKS),
    "cells": cells,
    "seeds.start": seed,
    "seeds.count": positive_int,
    "factories": mapping_of_text,
    "context.position_dims": optional(list_of(integer(0), example="[0,1,2]")),
    "context.gripper_dims": optional(list_of(integer(0), non_empty=False, example="[3]")),
    "context.action_mode": choice(*ACTION_MODES),
    "context.agent_pos_key": optional(text),
    "context.agent_pos_dims": optional(list_of(integer(0), example="[0,1]")),
    "context.velocity_scale": optional(positive),
    "record_keys": optional(list_of(text, example="[agent_pos,object]")),
    "deadline_ms": deadlines,
    "overwrite": boolean,
    "progress": boolean,
}
CHECKS = merged(ENV_CHECKS, THREADS, SWEEP_CHECKS, {
    "monitor_dir": optional(existing_path("monitor directory")),
    "num_samples": optional(positive_int),
})


def check_factories(env_cfg: dict[str, Any], factories: dict[str, str], shifts: list[str]) -> dict[str, Any]:
    """The shift factories, resolved, once each imports and takes ``severity`` and every shift in ``shifts``
    has a factory or can be passed to the env factory as ``shifts``; else a ValueError naming the fix."""
    built = {shift: resolve(spec) for shift, spec in factories.items()}
    for shift, fn in built.items():
        if not accepts(fn, "severity"):
            raise ValueError(f"factories.{shift}={factories[shift]} is called as f(severity=..., **env.kwargs) but takes no "
                             "'severity' parameter; give it one (def f(severity=0.0, **kwargs)) or name another factory")
    base = resolve(env_cfg["factory"])
    missing = sorted({s for s in shifts if s != "none" and s not in built} if not accepts(base, "shifts") else set())
    if missing:
        raise ValueError(f"the cells name shifts {missing} but env.factory={env_cfg['factory']} takes no 'shifts' parameter and "
                         f"factories has none for them (factories: {sorted(built) or 'none'}); give one per shift, "
                         f"e.g. factories.{missing[0]}=my_pkg.envs:make_{missing[0]} (called as f(severity=..., **env.kwargs)), "
                         "or remove those cells")
    return built


def env_builder(env_cfg: dict[str, Any], factories: dict[str, str], cells: list[str] = ()):
    """make_env(shift, severity): the task with that shift, or the user's factory for it (checked first, check_factories)."""
    built = check_factories(env_cfg, factories, list(cells))

    def make_env(shift: str, severity: float):
        if shift in built:  # f(severity=..., **env.kwargs), and shift= when f names that parameter
            named = {"shift": shift} if "shift" in inspect.signature(built[shift]).parameters else {}
            kwargs = {"severity": severity, **named, **dict(env_cfg.get("kwargs") or {})}
            with named_on_error(f"factories.{shift}={factories[shift]}", built[shift], kwargs):
                env = built[shift](**kwargs)
            return checked_env(wrapped(env, env_cfg), f"factories.{shift}={factories[shift]}")
        shifts = [] if shift == "none" else [[shift, severity]]
        return make_env_from_config({**env_cfg, "shifts": [*(env_cfg.get("shifts") or []), *shifts]})

    return make_env


def action_context(context_cfg: dict[str, Any], action_dim: int, probe_env, positions: bool = True,
                   quiet: bool = False, period: float | None = None) -> FallbackContext:
    """The action layout a fallback (or a velocity steering) needs: from ``context`` if given, else from the task env, with
    the env's control ``period`` (seconds per env step). ``positions=False`` (a fallback that commands no positions) takes
    every action entry for the layout when neither names one. A position layout is checked against the env's measured
    position (a note when it has none; ``quiet``: said already)."""
    cfg = {k: v for k, v in context_cfg.items() if v is not None}
    cfg["control_period_s"] = period
    if positions and cfg.get("action_mode") == "effort":
        refuse_effort("effort", "a fallback (hold, stop, retreat, return_retry, ...)")
    if "position_dims" not in cfg:
        n_pos = getattr(getattr(probe_env, "unwrapped", probe_env), "position_dims", None)
        if n_pos is None and not positions:
            grippers = set(cfg.get("gripper_dims") or [])
            return FallbackContext(action_dim=action_dim, **cfg, position_dims=[d for d in range(action_dim) if d not in grippers])
        if n_pos is None:
            raise ValueError(
                f"a fallback (hold, stop, retreat, return_retry, ...) commands positions, but this env's {action_dim}-d action does "
                "not say which entries are position targets (the env attribute position_dims, set by fiper's tasks). An env driven "
                "by forces or torques (declare it: context.action_mode=effort) has no position to hold (a hold would keep "
                "applying its last force): give only a controller of your own (the controller response), responses without a "
                "fallback (steer), or skip the outcome sweep "
                "(launch.pipeline act=null). Position or velocity targets: name them, context.position_dims=[0,1,2] "
                "context.gripper_dims=[3] (launch.stress, launch.act; launch.pipeline: "
                "\"act.overrides=['context.position_dims=[0,1,2]','context.gripper_dims=[3]']\"), and context.action_mode=velocity "
                "when the entries are velocities")
        cfg["position_dims"] = list(range(int(n_pos)))
        cfg.setdefault("gripper_dims", [d for d in range(action_dim) if d >= int(n_pos)])
    context = FallbackContext(action_dim=action_dim, **cfg)
    if positions and callable(getattr(probe_env, "reset", None)):  # an env to read a measured position from
        note = measured_position_note(context, observation_dict(reset_env(probe_env, 0)[0]), named="agent_pos_key" in cfg,
                                      dims_named="agent_pos_dims" in cfg)
        if note and not quiet:
            print(f"note: {note}")
    return context


def measured_position_note(context: FallbackContext, obs: dict[str, Any], named: bool, dims_named: bool = False) -> str | None:
    """What a position fallback will hold when ``obs`` (a reset observation) carries no measured position, or reads the
    first entries of a default-named key that has more than the positions and grippers, without ``agent_pos_dims``
    (``dims_named``): a note, or None when it does (or the actions are velocities). A key named in the config (``named``)
    that the observation lacks, or ``agent_pos_dims`` past its entries, is a ValueError naming the keys there are."""
    if context.action_mode == "velocity":
        return None
    key = context.agent_pos_key
    if key is not None and key in obs:
        try:
            context.agent_position(obs)
        except ValueError as err:
            raise ValueError(f"context.agent_pos_dims: {err} (context.agent_pos_dims=[...] picks the entries of "
                             f"obs[{key!r}] that measure the position targets, in the order of context.position_dims)") from None
        n, size = len(context.position_dims), int(np.size(obs[key]))
        if named or dims_named or size <= n + len(context.gripper_dims):  # positions, then the gripper's: fiper's tasks
            return None
        return (f"hold, retreat and return_retry read the measured position from the first {n} of the {size} entries of "
                f"obs[{key!r}]: if those are not the positions the action entries {list(context.position_dims)} command "
                "(lerobot's gym-hil keeps joint angles first and the hand's x, y, z at 15..17), name the entries, "
                "context.agent_pos_dims=[...] (launch.pipeline: in act.overrides)")
    keys = {k: tuple(np.shape(v)) for k, v in obs.items()}
    if named:
        raise ValueError(f"context.agent_pos_key={key!r} is not a key of the env's observation {keys}: name the key that "
                         "measures the position targets (a flat Box observation is stored as 'obs'), with "
                         "context.agent_pos_dims=[...] picking its entries")
    flat = next(iter(keys)) if len(keys) == 1 else "<key>"
    dims = list(range(len(context.position_dims)))
    return (f"the observation has no measured position (no key {key!r}; it has {keys}), so hold, retreat and return_retry "
            "work from the last commanded position targets: a hold commands the last target, which a robot lagging its "
            "targets has not reached and keeps moving toward. If the observation measures the positions the action "
            f"entries {list(context.position_dims)} command, name them: context.agent_pos_key={flat} "
            f"context.agent_pos_dims={dims} (the entries of that key, in the order of context.position_dims; "
            "launch.pipeline: in act.overrides)")


def built_response(config: dict[str, Any], where: str, prefix: str = "", also: str = ""):
    """``response_from_config(config)``, or a ValueError naming the config ``where`` to fix (a name, a file, a signature)."""
    try:
        return response_from_config(config)
    except (TypeError, ValueError, AttributeError, ImportError) as err:
        raise ValueError(f"{prefix}the response {where} cannot be built: {err} (fix {where}{also})") from None


def probe_response(response: Any, env: Any, obs: Any) -> None:
    """Bind ``response`` to ``env`` and call a safe controller once on ``obs`` (the env's first observation), so that one
    needing what the env lacks (SceneKeepOut reads scene_obstacles(); a controller written for another observation) fails
    before any episode, not at the first alarm."""
    response.bind(env)
    probe = getattr(getattr(response, "fallback", None), "probe", None)
    if callable(probe):
        probe(observation_dict(obs), math.prod(env.action_space.shape))


def needs_context(response: Any) -> bool:
    """Whether ``response`` needs the action layout: a fallback, or a steering of velocity actions (whose paths start at
    the measured position)."""
    steering = getattr(response, "steering", None)
    return getattr(response, "fallback", None) is not None or bool(getattr(getattr(steering, "config", None), "velocity_actions", False))


def build_response(cfg: DictConfig, monitor, policy, probe, period: float | None = None):
    """(GradedResponse, FallbackContext) from the ``response`` group, or (None, None) without one."""
    spec = cfg.get("response")
    if spec is None:
        return None, None
    if monitor is None:
        raise ValueError("response= acts on the monitor's alarms: pass monitor_dir=<fitted + calibrated monitor> too")
    response = built_response(plain(spec), "response", "launch.stress (nothing has run yet): ")
    try:
        probe_response(response, probe, reset_env(probe, 0)[0])
    except (TypeError, ValueError, AttributeError) as err:
        raise ValueError(f"launch.stress (nothing has run yet): the response cannot act on this env: {err}. Give the env what "
                         "it reads, or choose or set up the response differently (response=, response.<setting>=)") from None
    if not needs_context(response):
        return response, None
    context = action_context(plain(cfg.context), policy.action_dim, probe, positions=uses_positions(response) or
                             response.fallback is None, period=period)
    check_steering_layout(response, context, "response.steering", obs=observation_dict(reset_env(probe, 0)[0]))
    return response, context


def check_observations(policy, probe_env, env_cfg: dict[str, Any]) -> None:
    """The env must emit every observation key the policy reads, with the shapes it was trained on. Read from a reset
    observation, not the declared space: collection stored what the env emits, which its space may not say."""
    emitted = {k: tuple(np.shape(v)) for k, v in observation_dict(reset_env(probe_env, 0)[0]).items()}
    wrong = {k: (s, emitted.get(k)) for k, s in policy.obs_shapes.items() if emitted.get(k) != tuple(s)}
    if wrong:
        detail = ", ".join(f"'{k}' {want} (env: {'missing' if got is None else got})" for k, (want, got) in wrong.items())
        raise ValueError(
            f"the policy reads observations the env {env_cfg.get('name') or env_cfg.get('factory')} does not emit: {detail}; "
            f"the env emits {emitted}. Use a policy trained on this env (python -m launch.train data=<its demos>) or the env it was trained on"
        )


def fingerprinted_context(context: dict[str, Any]) -> dict[str, Any]:
    """The action layout as a store's fingerprint records it: the measured-position settings only when set, so that
    stores recorded before those settings existed still resume."""
    return {k: v for k, v in context.items() if not (k in ("agent_pos_key", "agent_pos_dims", "velocity_scale") and v is None)}


RESPONSE_KEY = "intervention"  # the name stores' fingerprints hold the response under: another name would refuse their resume


def store_fingerprint(cfg: DictConfig, num_samples: int, policy: Any = None) -> dict[str, Any]:
    """What produced a store's episodes: policy and monitor files, env (with its shifts) and sampling settings.

    The seeds and cells are left out: they say which episodes a store holds, and a sweep may add more. Code of one's own
    that the settings name ('file.py:make_env', 'my_pkg.envs:make') enters as ``sources`` (sha256 per file), so an
    edited env, expert or fallback is not resumed into episodes the old code recorded.
    """
    deadlines = deadline_settings(cfg)
    settings = {
        "policy": policy_digest(cfg, policy),
        "monitor": directory_digest(cfg.monitor_dir),
        "env": plain(cfg.env),
        "factories": plain(cfg.factories),
        "sampling": {"num_samples": int(num_samples), "execute": cfg.execute},
        RESPONSE_KEY: plain(cfg.get("response")),
        "context": fingerprinted_context(plain(cfg.context)) if cfg.get("response") is not None else None,
        "record_keys": plain(cfg.record_keys),
        **({"deadline_ms": deadlines} if deadlines else {}),  # unset: older stores still resume
    }
    sources = named_sources({**{k: settings[k] for k in ("env", "factories", RESPONSE_KEY)}, "policy_factory": cfg.get("policy_factory")})
    return make_fingerprint({**settings, "sources": sources} if sources else settings)


def deadline_settings(cfg: Any) -> dict[str, float]:
    """The hard deadlines ``deadline_ms`` sets, {'policy' | 'monitor': milliseconds}; empty when none is."""
    return {k: float(v) for k, v in (plain(cfg.get("deadline_ms")) or {}).items() if v is not None}


def under_deadlines(deadlines: dict[str, float], policy: Any, monitor: Any, probe: Any, seed: int, num_samples: int) -> tuple[Any, Any]:
    """The policy and the monitor under the hard deadlines set (docs/control_loop.md, "Faults"), after one untimed
    decision on ``probe``, so that the process's first, slow calls do not overrun in a recorded episode."""
    if not deadlines:
        return policy, monitor
    obs, _ = reset_env(probe, seed)
    MonitoredPolicy(policy, monitor, num_samples=num_samples, seed=seed).warm_up(obs, probe)
    return (DeadlinePolicy(policy, deadlines["policy"]) if "policy" in deadlines else policy,
            DeadlineMonitor(monitor, deadlines["monitor"]) if "monitor" in deadlines else monitor)


def deadline_report(policy: Any, monitor: Any) -> list[str]:
    """One line per deadline of this run: its calls that overran, each ending a decision in the fallback."""
    return [f"deadline_ms.{what}={wrapped.deadline_ms:g}: {wrapped.overruns} call(s) overran in this run, each decision they "
            "belonged to ended in the fallback (decisions/reason in the store says which)"
            for what, wrapped in (("policy", policy), ("monitor", monitor)) if isinstance(wrapped, (DeadlinePolicy, DeadlineMonitor))]


def run(cfg: DictConfig):
    validate(cfg, CHECKS, "stress")
    set_cpu_threads(cfg.cpu_threads)
    device = resolve_device(cfg.device)
    policy = load_policy_from(cfg, device)
    monitor = load_monitor(cfg.monitor_dir, policy=policy, device=device) if cfg.monitor_dir else None
    num_samples = monitor.identity.num_samples if monitor is not None else cfg.num_samples  # a monitor fixes B
    env_cfg = plain(cfg.env)
    cells = [(shift, sev) for shift, sevs in plain(cfg.cells) for sev in sevs]
    make_env = env_builder(env_cfg, plain(cfg.factories), [shift for shift, _ in cells])
    probe = make_env("none", 0.0)
    try:
        check_observations(policy, probe, env_cfg)
        task = env_task_name(probe, env_cfg.get("name"))
        period = control_period_s(probe, env_cfg.get("control_period_s"), env_name=task)
        response, context = build_response(cfg, monitor, policy, probe, period)
        check_guidance(policy, {"the response": response}, "launch.stress (nothing has run yet)")
        deadlines = deadline_settings(cfg)
        if deadlines and getattr(response, "fallback", None) is None:
            raise ValueError(f"deadline_ms={deadlines}: an overrun ends the decision in the response's fallback, "
                             "and this run has none, so the first overrun would stop the sweep: give response=hold (with "
                             "monitor_dir=<fitted + calibrated monitor>), or leave deadline_ms null; nothing has run yet")
        policy, monitor = under_deadlines(deadlines, policy, monitor, probe, cfg.seeds.start, num_samples)
    finally:
        probe.close()
    agent = MonitoredPolicy(policy, monitor, response=response, context=context, num_samples=num_samples,
                            execute=cfg.execute, seed=cfg.seeds.start)
    attrs = {"stress_config": plain(cfg), "task": task, "control_period_s": period, "num_samples": agent.num_samples,
             "response_type": type(response).__name__ if response is not None else "none"}
    recorder = RolloutRecorder(cfg.out, score_names=monitor.names if monitor else (), attrs=attrs, policy=policy,
                               fingerprint=store_fingerprint(cfg, agent.num_samples, policy), overwrite=cfg.get("overwrite", False))
    seeds = range(cfg.seeds.start, cfg.seeds.start + cfg.seeds.count)
    try:
        summary = run_sweep(make_env, agent, cells, seeds, recorder,
                            record_keys=cfg.record_keys, progress=cfg.progress)
    except FailSafeError as err:
        if err.source == "fallback":
            raise ValueError(f"{err}. A fallback that gives no safe action stops launch.stress: fix the fallback of "
                             "response= (the episodes recorded before this one are kept and a rerun resumes after "
                             "them)") from err
        raise ValueError(f"{err}. In launch.stress: fix {fault_owner(err)} (the cause above; the episodes recorded before this one are "
                         "kept and a rerun resumes after them), or answer faults with a fallback: response=hold (with "
                         "monitor_dir=<fitted + calibrated monitor>)") from err
    print(summary.table())
    for line in deadline_report(policy, monitor):
        print(line)
    return summary


@hydra.main(config_path="conf", config_name="stress", version_base=None)
def main(cfg: DictConfig) -> None:
    with reported(interrupted=RESUMES):
        run(cfg)


if __name__ == "__main__":
    refuse_renamed(sys.argv[1:], {"intervention": "response"}, "launch.stress")
    main()
