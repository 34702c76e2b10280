"""Rebuild a damaged rollout / demonstration store from its intact episodes.

    python -m launch.repair_store store=<store>               # in place; the original is kept as <store>.damaged-<time>
    python -m launch.repair_store store=<store> out=<copy>    # write the repaired store elsewhere, original untouched
    python -m launch.repair_store store=<store> dry_run=true  # only report what is damaged

Every committed episode whose steps, decisions and labels read back intact (chunk files present,
decodable, matching their checksum record) is kept; leftovers of an interrupted append are not
episodes and are left out. Nothing is deleted.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from fiper.storage.repair import RepairOutcome, repair_store
from launch.validate import boolean, existing_path, optional, reported, text, validate

CHECKS = {"store": existing_path("store"), "out": optional(text), "dry_run": boolean}


def run(cfg: DictConfig) -> RepairOutcome:
    validate(cfg, CHECKS, "repair_store")
    outcome = repair_store(cfg.store, out=cfg.get("out"), dry_run=bool(cfg.get("dry_run", False)))
    print(outcome.describe())
    return outcome


@hydra.main(config_path="conf", config_name="repair_store", version_base=None)
def main(cfg: DictConfig) -> None:
    with reported():
        run(cfg)


if __name__ == "__main__":
    main()
