"""Evaluate failure monitors on recorded rollouts: python -m launch.evaluate rollouts=<stores> out=<dir>."""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from fiper.evaluation import EvaluationConfig, summary_table, write_outputs
from fiper.evaluation.repeats import evaluate_repeats, summarise_repeats, write_repeats
from launch.common import plain, resolve_device, save_config, set_cpu_threads

LAUNCH_KEYS = ("rollouts", "out", "plots", "cpu_threads", "repeats")


def run(cfg: DictConfig):
    """Compose the library calls (also used by tests with a composed config)."""
    set_cpu_threads(cfg.cpu_threads)
    settings = {k: v for k, v in plain(cfg).items() if k not in (*LAUNCH_KEYS, "hydra")}
    settings["device"] = resolve_device(settings.get("device", "cpu"))
    config = EvaluationConfig.from_mapping(settings)
    repeats = int(cfg.get("repeats", 1))
    first = {}

    def written(k: int, result) -> None:
        """Repeat 0 writes the usual outputs into out/; later ones their metrics under out/repeats/."""
        if k == 0:
            first["result"] = result
            first["paths"] = write_outputs(result, cfg.out, plots=bool(cfg.plots))
        else:
            write_outputs(result, Path(cfg.out) / "repeats" / f"seed_{result.config.seed}", plots=False)

    per_repeat = evaluate_repeats(plain(cfg.rollouts), config, repeats, on_result=written)
    save_config(cfg, cfg.out, "evaluate_config.yaml")
    print(summary_table(first["result"]))
    if repeats > 1:
        extra = write_repeats(summarise_repeats(per_repeat), [config.seed + k for k in range(repeats)], cfg.out, config.baselines)
        print(f"wrote {extra['repeats_md']} ({repeats} split seeds from {config.seed})")
    paths = first["paths"]
    print(f"wrote {paths['metrics']} and {paths['report']}")
    return first["result"]


@hydra.main(config_path="conf", config_name="evaluate", version_base=None)
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
