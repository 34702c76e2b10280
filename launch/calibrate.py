"""Calibrate a fitted monitor's thresholds: python -m launch.calibrate monitor_dir=<dir> data=<store>.

A store without recorded decisions is replayed with ``policy_dir=`` or ``policy_factory=my_pkg.policies:load``.
"""

from __future__ import annotations

import warnings

import hydra
from omegaconf import DictConfig

from calibration.thresholds import THRESHOLD_KINDS
from fiper.monitor import load_monitor, read_monitor_config, save_monitor
from fiper.monitor.decision_data import chosen_episodes, left_out_text, load_decisions
from fiper.monitor.independence import check_independent, without_guarantee
from fiper.rules import guarantees_delta, separate_bound_text
from fiper.storage import EpisodeStore
from launch.common import load_policy_from, plain, resolve_device, save_config, set_cpu_threads
from launch.validate import THREADS, boolean, episode_selection, choice, existing_path, merged, optional, policy_rules, probability, reported, seed, validate

CHECKS = merged(THREADS, {
    "data": existing_path("store"),
    "monitor_dir": existing_path("monitor directory"),
    **policy_rules(required=False),
    "delta": optional(probability),
    "threshold_type": optional(choice(*THRESHOLD_KINDS)),
    "joint": optional(boolean),
    "seed": seed,
    "allow_overlap": optional(boolean),
    "episodes": optional(episode_selection),
    "progress": boolean,
})


DEFAULT_DELTA = 0.1


def delta_setting(cfg: DictConfig, extra: dict) -> float:
    """δ: the command line's, else the ``monitor.delta`` launch.fit was given (its fit config), else 0.1; printed with its source."""
    fitted = ((extra.get("fit") or {}).get("monitor") or {}).get("delta")
    if cfg.get("delta") is not None:
        delta, source = float(cfg.delta), "the command line"
    elif fitted is not None:
        delta, source = float(fitted), "launch.fit's monitor.delta"
    else:
        delta, source = DEFAULT_DELTA, "the default (no delta= here, no monitor.delta at launch.fit)"
    print(f"delta: {delta:g}, from {source}")
    return delta


def threshold_settings(cfg: DictConfig, monitor, extra: dict) -> tuple[str, bool]:
    """Threshold type and joint flag: the command line's, else the monitor's spec (from launch.fit's monitor config or
    the evaluated monitor file). The two are a pair: a threshold type given on the command line does not inherit the spec's joint flag."""
    if cfg.get("threshold_type"):
        kind, joint, source = cfg.threshold_type, bool(cfg.get("joint") or False), "the command line"
    else:
        kind, joint = monitor.threshold_type, monitor.joint if cfg.get("joint") is None else bool(cfg.joint)
        source = "the monitor file " + extra["monitor_file"]["file"] if "monitor_file" in extra else "the monitor's spec"
        if cfg.get("joint") is not None:
            source += ", joint flag from the command line"
    print(f"threshold: {kind}{' (joint)' if joint else ''}, from {source}")
    return kind, joint


def guarantee_line(monitor, kind: str, joint: bool, delta: float) -> str:
    """What the calibrated thresholds promise for the whole monitor (docs/calibration.md, "What is and is not guaranteed")."""
    k, what = len(monitor.names), f"monitor: {monitor.rule} of {', '.join(f'{n} (window {monitor.windows[n]})' for n in monitor.names)}"
    if not THRESHOLD_KINDS[kind]:
        bound = f"no false-alarm guarantee ({kind} thresholds control each decision, not the rollout)"
    elif guarantees_delta(monitor.rule, k, joint):
        bound = f"false alarms on successful in-distribution rollouts <= delta = {delta:g}"
    else:
        separate = separate_bound_text(monitor.rule, k, delta)
        what = "warning: " + what
        bound = (f"false alarms <= {separate} (each score at delta; joint=true holds delta)" if separate is not None
                 else "no known bound on false alarms (each score at delta; joint=true holds delta)")
    return f"{what}, {kind} thresholds{' (joint)' if joint else ''} at delta={delta:g}: {bound}"


def run(cfg: DictConfig):
    validate(cfg, CHECKS, "calibrate")
    set_cpu_threads(cfg.cpu_threads)
    device = resolve_device(cfg.device)
    policy = load_policy_from(cfg, cfg.device)
    monitor = load_monitor(cfg.monitor_dir, policy=policy, device=device)
    store = EpisodeStore.open(cfg.data)
    episodes = chosen_episodes(store, cfg.get("episodes"))
    print(f"calibration data: {len(episodes)} successful in-distribution episodes of {cfg.data}"
          + left_out_text(store, episodes, cfg.get("episodes")))
    overlap = check_independent(monitor.fit_data, store, episodes, allow_overlap=bool(cfg.get("allow_overlap", False)))
    data, _ = load_decisions(store, episodes=episodes, policy=policy,
                             num_samples=monitor.identity.num_samples, seed=cfg.seed, device=device,
                             progress=bool(cfg.progress))
    raw = monitor.score_offline(data.embeddings, data.samples, data.decision_ends, observations=data.observations)
    extra = read_monitor_config(cfg.monitor_dir).get("extra", {})
    delta = delta_setting(cfg, extra)
    kind, joint = threshold_settings(cfg, monitor, extra)
    options = {"seed": cfg.seed} if kind == "band" or joint else {}  # the D1/D2 split
    with warnings.catch_warnings():  # the guarantee line below states the bound of a separately calibrated OR
        warnings.filterwarnings("ignore", message="rule .* calibrated separately", category=UserWarning)
        thresholds = monitor.calibrate(raw, data.decision_ends, delta=delta, threshold_type=kind, joint=joint, **options)
    if overlap:  # allow_overlap=true: calibrated anyway, without the guarantee
        monitor.set_thresholds(thresholds := without_guarantee(thresholds, overlap))
        print(f"warning: {overlap}; thresholds marked guaranteed=False")
    cfg = cfg.copy()
    cfg.delta = delta  # the files record the δ calibrated at, wherever it came from
    save_monitor(monitor, cfg.monitor_dir, extra={**extra, "calibrate": {**plain(cfg), "threshold_type": kind, "joint": joint}})
    save_config(cfg, cfg.monitor_dir, "calibrate_config.yaml")
    for name, th in thresholds.items():
        print(f"{name}: {th!r}")
    print(guarantee_line(monitor, kind, joint, delta))
    return monitor


@hydra.main(config_path="conf", config_name="calibrate", version_base=None)
def main(cfg: DictConfig) -> None:
    with reported():
        run(cfg)


if __name__ == "__main__":
    main()
