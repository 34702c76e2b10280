"""Stress-test a trained policy: python -m launch.stress policy_dir=<dir> monitor_dir=<dir> out=<store>.

``intervention=<hold|stop|retreat|steer_keep_out|...>`` (launch/conf/intervention) acts on the
monitor's alarms during the sweep; the recorder stores what was done at every decision.
"""

from __future__ import annotations

from typing import Any

import hydra
from omegaconf import DictConfig

from fiper.collection import call_with_accepted, make_env_from_config, resolve
from fiper.control import MonitoredPolicy, RolloutRecorder
from fiper.control.sweep import run_sweep
from fiper.interventions import FallbackContext
from fiper.monitor import load_monitor
from launch.common import maybe_load_policy, plain, resolve_device, set_cpu_threads


def env_builder(env_cfg: dict[str, Any], factories: dict[str, str]):
    """make_env(shift, severity): the task with that shift, or the user's factory for it."""

    def make_env(shift: str, severity: float):
        if shift in factories:
            return call_with_accepted(resolve(factories[shift]), {"severity": severity, "shift": shift}, dict(env_cfg.get("kwargs") or {}))
        shifts = [] if shift == "none" else [[shift, severity]]
        return make_env_from_config({**env_cfg, "shifts": [*(env_cfg.get("shifts") or []), *shifts]})

    return make_env


def action_context(context_cfg: dict[str, Any], action_dim: int, probe_env) -> FallbackContext:
    """The action layout a fallback needs: from ``context`` if given, else from the task env."""
    cfg = {k: v for k, v in context_cfg.items() if v is not None}
    if "position_dims" not in cfg:
        n_pos = getattr(getattr(probe_env, "unwrapped", probe_env), "position_dims", None)
        if n_pos is None:
            raise ValueError("this env does not declare its position_dims: set context.position_dims=[...] "
                             "(and context.gripper_dims) for the fallback")
        cfg["position_dims"] = list(range(int(n_pos)))
        cfg.setdefault("gripper_dims", [d for d in range(action_dim) if d >= int(n_pos)])
    return FallbackContext(action_dim=action_dim, **cfg)


def build_response(cfg: DictConfig, monitor, policy, make_env):
    """(GradedResponse, FallbackContext) from the ``intervention`` group, or (None, None) without one."""
    spec = cfg.get("intervention")
    if spec is None:
        return None, None
    if monitor is None:
        raise ValueError("intervention= acts on the monitor's alarms: pass monitor_dir=<fitted + calibrated monitor> too")
    response = hydra.utils.instantiate(spec)
    if response.fallback is None:
        return response, None
    probe = make_env("none", 0.0)
    try:
        return response, action_context(plain(cfg.context), policy.action_dim, probe)
    finally:
        probe.close()


def run(cfg: DictConfig):
    set_cpu_threads(cfg.cpu_threads)
    device = resolve_device(cfg.device)
    policy = maybe_load_policy(cfg.policy_dir, device)
    monitor = load_monitor(cfg.monitor_dir, policy=policy, device=device) if cfg.monitor_dir else None
    num_samples = monitor.identity.num_samples if monitor is not None else cfg.num_samples  # a monitor fixes B
    env_cfg = plain(cfg.env)
    make_env = env_builder(env_cfg, plain(cfg.factories))
    response, context = build_response(cfg, monitor, policy, make_env)
    agent = MonitoredPolicy(policy, monitor, response=response, context=context, num_samples=num_samples,
                            select=cfg.select, seed=cfg.seeds.start)
    attrs = {"stress_config": plain(cfg), "task": env_cfg.get("name") or "custom", "control_period_s": 0.1,
             "n_action_steps": policy.n_action_steps, "num_samples": agent.num_samples,
             "intervention": type(response).__name__ if response is not None else "none"}
    recorder = RolloutRecorder(cfg.out, score_names=monitor.names if monitor else (), attrs=attrs)
    cells = [(shift, sev) for shift, sevs in plain(cfg.cells) for sev in sevs]
    seeds = range(cfg.seeds.start, cfg.seeds.start + cfg.seeds.count)
    summary = run_sweep(make_env, agent, cells, seeds, recorder,
                        record_keys=cfg.record_keys, progress=cfg.progress)
    print(summary.table())
    return summary


@hydra.main(config_path="conf", config_name="stress", version_base=None)
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
