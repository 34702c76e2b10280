"""Demonstrations from a LeRobotDataset as a fiper store: python -m launch.import_lerobot dataset=<dir> out=<store>.

Feature names map to store keys by ``keys={feature: key}`` (the keys your env's observation has); see
fiper.storage.lerobot_import and docs/rollout_format.md, "Demonstrations from lerobot".
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from fiper.storage.lerobot_import import import_lerobot
from launch.common import imported_summary, plain
from launch.validate import (boolean, existing_path, integer, optional, reported, seconds_per_step, text, text_mapping,
                             validate)

CHECKS = {"dataset": existing_path("LeRobotDataset directory"), "out": text,
          "keys": optional(text_mapping("{observation.state: agent_pos}")), "task": optional(text),
          "max_episodes": optional(integer(1)), "control_period_s": optional(seconds_per_step), "overwrite": boolean}


def run(cfg: DictConfig):
    validate(cfg, CHECKS, "import_lerobot")
    store = import_lerobot(cfg.dataset, cfg.out, keys=plain(cfg["keys"]) or {}, task=cfg.task, max_episodes=cfg.max_episodes,
                           control_period_s=cfg.control_period_s, overwrite=bool(cfg.overwrite))
    print(imported_summary(store, cfg.out, "episodes"))
    return store


@hydra.main(config_path="conf", config_name="import_lerobot", version_base=None)
def main(cfg: DictConfig) -> None:
    with reported():
        run(cfg)


if __name__ == "__main__":
    main()
