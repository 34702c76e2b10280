"""Fit a monitor's score models: python -m launch.fit data=<store> policy_dir=<ckpt> out=<dir> [monitor_file=<monitor_<task>.yaml from launch.evaluate>].

A monitor already at ``out`` is refused before anything is fitted; ``overwrite=true`` replaces it.

``policy_factory=my_pkg.policies:load`` (called with ``device=``) replaces ``policy_dir`` for a policy from another stack.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, open_dict

from fiper.monitor import check_replaceable, save_monitor
from fiper.monitor.monitor_file import read_monitor_file
from fiper.monitor.fitting import fit_monitor
from fiper.monitor.spec import MonitorSpec, with_action_steps
from fiper.scores.observations import attr_n_action_steps
from fiper.monitor.decision_data import chosen_episodes, has_decisions, left_out_text, load_decisions
from fiper.monitor.independence import fit_record
from fiper.storage import EpisodeStore
import launch.components  # noqa: F401  (the 'monitor' and 'score' config groups)
from launch.calibrate import DEFAULT_DELTA
from launch.common import load_policy_from, plain, resolve_device, save_config, set_cpu_threads
from launch.validate import THREADS, boolean, episode_selection, existing_path, merged, optional, policy_rules, positive_int, reported, seed, text, validate

CHECKS = merged(THREADS, {
    "data": existing_path("store"),
    **policy_rules(required=False),
    "out": text,
    "monitor_file": optional(existing_path("monitor file")),
    "num_samples": optional(positive_int),
    "seed": seed,
    "progress": boolean,
    "overwrite": boolean,
    "episodes": optional(episode_selection),
})


def _described(monitor: Any, name: str) -> str:
    """'ace (window 5, action dims [0, 1])': a score's window, and the action entries it reads where it reads some."""
    dims = (getattr(monitor.scores[name], "config", None) or {}).get("dims")
    return f"{name} (window {monitor.windows[name]}{f', action dims {list(dims)}' if dims is not None else ''})"


def run(cfg: DictConfig):
    validate(cfg, CHECKS, "fit")
    set_cpu_threads(cfg.cpu_threads)
    check_replaceable(cfg.out, overwrite=bool(cfg.overwrite))  # before the fit: it may take long
    evaluated = read_monitor_file(cfg.monitor_file) if cfg.get("monitor_file") else None
    spec = evaluated["spec"] if evaluated else MonitorSpec.of(plain(cfg.monitor), source="fit config 'monitor'")
    num_samples = cfg.get("num_samples") or (evaluated["evaluated"].get("num_samples") if evaluated else None)
    policy = load_policy_from(cfg, cfg.device)
    store = EpisodeStore.open(cfg.data)
    episodes = chosen_episodes(store, cfg.get("episodes"))
    data, identity = load_decisions(store, episodes=episodes, policy=policy,
                                    num_samples=num_samples and int(num_samples),  # None: load_decisions' default B
                                    seed=cfg.seed, device=resolve_device(cfg.device),
                                    progress=bool(cfg.progress))
    steps = attr_n_action_steps(store.attrs) if has_decisions(store) else identity.n_action_steps  # replayed: the policy's
    spec = with_action_steps(spec, steps)  # STAC's n_action_steps, as launch.evaluate fills it
    monitor = fit_monitor(data, identity, spec)  # its spec's threshold type and joint flag are launch.calibrate's defaults
    if evaluated:  # the saved config says what was fitted: the monitor file's spec, not the default monitor group
        cfg = cfg.copy()
        with open_dict(cfg):
            cfg.monitor = spec.as_dict()
    extra = {"fit": plain(cfg)}
    if evaluated:
        extra["monitor_file"] = {"file": str(cfg.monitor_file), "evaluated": evaluated["evaluated"]}
    save_monitor(monitor, cfg.out, extra=extra, fit_data=fit_record(store, episodes),  # calibration refuses these episodes
                 overwrite=bool(cfg.overwrite))
    save_config(cfg, cfg.out, "fit_config.yaml")
    (Path(cfg.out) / "calibrate_config.yaml").unlink(missing_ok=True)  # a replaced monitor's: this one is not calibrated
    print(f"fitted {', '.join(_described(monitor, n) for n in monitor.names)}, rule {monitor.rule}, on "
          f"{data.n_decisions} decisions of {len(data.decision_ends)} successful in-distribution episodes"
          + left_out_text(store, episodes, cfg.get("episodes")) + f" -> {cfg.out}")
    delta = (f"at delta={spec.delta:g} (monitor.delta) unless given another delta="
             if spec.delta is not None else f"at the delta= it is given (default {DEFAULT_DELTA:g})")
    print(f"next: python -m launch.calibrate data=<other successful rollouts> monitor_dir={cfg.out} fits "
          f"{spec.threshold_type} thresholds{' (joint)' if spec.joint else ''}"
          + (f" (from {cfg.monitor_file})" if evaluated else "") + f" {delta}")
    return monitor


@hydra.main(config_path="conf", config_name="fit", version_base=None)
def main(cfg: DictConfig) -> None:
    with reported():
        run(cfg)


if __name__ == "__main__":
    main()
