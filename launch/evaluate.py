"""Evaluate failure monitors on recorded rollouts: python -m launch.evaluate rollouts=<stores> out=<dir>."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from fiper.evaluation import EvaluationConfig, evaluate_rollouts, summary_table, write_outputs
from launch.common import plain, resolve_device, save_config, set_cpu_threads

LAUNCH_KEYS = ("rollouts", "out", "plots", "cpu_threads")


def run(cfg: DictConfig):
    """Compose the library calls (also used by tests with a composed config)."""
    set_cpu_threads(cfg.cpu_threads)
    settings = {k: v for k, v in plain(cfg).items() if k not in (*LAUNCH_KEYS, "hydra")}
    settings["device"] = resolve_device(settings.get("device", "cpu"))
    config = EvaluationConfig.from_mapping(settings)
    result = evaluate_rollouts(plain(cfg.rollouts), config)
    save_config(cfg, cfg.out, "evaluate_config.yaml")
    paths = write_outputs(result, cfg.out, plots=bool(cfg.plots))
    print(summary_table(result))
    print(f"wrote {paths['metrics']} and {paths['report']}")
    return result


@hydra.main(config_path="conf", config_name="evaluate", version_base=None)
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
