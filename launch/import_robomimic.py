"""Demonstrations from a robomimic HDF5 dataset as a fiper store: python -m launch.import_robomimic dataset=<file> out=<store>.

Observation keys map to store keys by ``keys={key: store key}`` (the keys your env's observation has); see
fiper.storage.robomimic_import and docs/rollout_format.md, "Demonstrations from robomimic".
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from fiper.storage.robomimic_import import import_robomimic
from launch.common import imported_summary, plain
from launch.validate import (Bad, boolean, existing_path, integer, list_of, optional, reported, seconds_per_step, text,
                             text_mapping, validate)


def one_or_list_of_text(v, paths: bool) -> None:
    """A dataset name, or a list of them placed side by side (robomimic's action_dict parts)."""
    try:
        text(v, paths) if isinstance(v, str) else list_of(text)(v, paths)
    except Bad:
        raise Bad("a dataset name or a non-empty list of them", "actions") from None


CHECKS = {"dataset": existing_path("robomimic dataset (.hdf5)"), "out": text,
          "keys": optional(text_mapping("{robot0_eef_pos: agent_pos}")), "obs": optional(list_of(text, example="[object, robot0_eef_pos]")),
          "action": one_or_list_of_text, "filter_key": optional(text), "task": optional(text), "max_episodes": optional(integer(1)),
          "control_period_s": optional(seconds_per_step), "overwrite": boolean}


def run(cfg: DictConfig):
    validate(cfg, CHECKS, "import_robomimic")
    store = import_robomimic(cfg.dataset, cfg.out, keys=plain(cfg["keys"]) or {}, obs=plain(cfg.obs), action=plain(cfg.action),
                             filter_key=cfg.filter_key, task=cfg.task, max_episodes=cfg.max_episodes,
                             control_period_s=cfg.control_period_s, overwrite=bool(cfg.overwrite))
    print(imported_summary(store, cfg.out, "demos"))
    return store


@hydra.main(config_path="conf", config_name="import_robomimic", version_base=None)
def main(cfg: DictConfig) -> None:
    with reported():
        run(cfg)


if __name__ == "__main__":
    main()
