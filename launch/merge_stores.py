"""Merge the per-job stores of one sweep into one store: python -m launch.merge_stores stores=<glob|dir|list> out=<store>.

Stores of different origins (fingerprint, task, shapes) are refused naming each difference; episodes
another store already holds (same shift, severity, seed and fingerprint) are skipped and counted.
The sources are only read (docs/sweeps.md, "Merging").
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from fiper.evaluation.rollouts import expand_stores
from fiper.storage.merge import MergeOutcome, merge_stores
from launch.common import plain
from launch.validate import Bad, list_of, reported, text, validate


def _stores(value, paths: bool) -> None:
    """A path, glob or directory of stores, or a non-empty list of them."""
    try:
        text(value, paths)
    except Bad:
        list_of(text, example="[runs/sweep/a.zarr,runs/sweep/b.zarr]")(value, paths)


CHECKS = {"stores": _stores, "out": text}


def run(cfg: DictConfig) -> MergeOutcome:
    validate(cfg, CHECKS, "merge_stores")
    outcome = merge_stores(expand_stores(plain(cfg.stores)), cfg.out)
    print(outcome.describe())
    return outcome


@hydra.main(config_path="conf", config_name="merge_stores", version_base=None)
def main(cfg: DictConfig) -> None:
    with reported():
        run(cfg)


if __name__ == "__main__":
    main()
