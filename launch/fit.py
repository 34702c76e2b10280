"""Fit a monitor's score models: python -m launch.fit data=<store> policy_dir=<ckpt> out=<dir>."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from fiper.monitor import save_monitor
from fiper.monitor.fitting import fit_monitor
from fiper.monitor.workflow import load_decisions, successful_in_distribution
from fiper.storage import EpisodeStore
from launch.common import maybe_load_policy, plain, resolve_device, save_config, set_cpu_threads


def run(cfg: DictConfig):
    set_cpu_threads(cfg.cpu_threads)
    policy = maybe_load_policy(cfg.policy_dir, cfg.device)
    store = EpisodeStore.open(cfg.data)
    data, identity = load_decisions(store, episodes=successful_in_distribution(store), policy=policy,
                                    num_samples=cfg.num_samples, seed=cfg.seed, device=resolve_device(cfg.device))
    m = plain(cfg.monitor)
    monitor = fit_monitor(data, identity, scores=m["scores"], windows=m["windows"], rule=m["rule"])
    save_monitor(monitor, cfg.out, extra={"fit": plain(cfg)})
    save_config(cfg, cfg.out, "fit_config.yaml")
    print(f"fitted {', '.join(monitor.names)} on {data.n_decisions} decisions of {len(data.decision_ends)} episodes -> {cfg.out}")
    return monitor


@hydra.main(config_path="conf", config_name="fit", version_base=None)
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
