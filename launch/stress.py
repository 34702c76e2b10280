"""Stress-test a trained policy: python -m launch.stress policy_dir=<dir> monitor_dir=<dir> out=<store>."""

from __future__ import annotations

from typing import Any

import hydra
from omegaconf import DictConfig

from fiper.collection import call_with_accepted, make_env_from_config, resolve
from fiper.control import MonitoredPolicy, RolloutRecorder
from fiper.control.sweep import run_sweep
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


def run(cfg: DictConfig):
    set_cpu_threads(cfg.cpu_threads)
    device = resolve_device(cfg.device)
    policy = maybe_load_policy(cfg.policy_dir, device)
    monitor = load_monitor(cfg.monitor_dir, policy=policy, device=device) if cfg.monitor_dir else None
    num_samples = monitor.identity.num_samples if monitor is not None else cfg.num_samples  # a monitor fixes B
    agent = MonitoredPolicy(policy, monitor, num_samples=num_samples, select=cfg.select, seed=cfg.seeds.start)
    env_cfg = plain(cfg.env)
    attrs = {"stress_config": plain(cfg), "task": env_cfg.get("name") or "custom", "control_period_s": 0.1,
             "n_action_steps": policy.n_action_steps, "num_samples": agent.num_samples}
    recorder = RolloutRecorder(cfg.out, score_names=monitor.names if monitor else (), attrs=attrs)
    cells = [(shift, sev) for shift, sevs in plain(cfg.cells) for sev in sevs]
    seeds = range(cfg.seeds.start, cfg.seeds.start + cfg.seeds.count)
    summary = run_sweep(env_builder(env_cfg, plain(cfg.factories)), agent, cells, seeds, recorder,
                        record_keys=cfg.record_keys, progress=cfg.progress)
    print(summary.table())
    return summary


@hydra.main(config_path="conf", config_name="stress", version_base=None)
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
