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

from fiper.storage import StoreError
from fiper.storage.repair import RepairReport, repair_store


def run(cfg: DictConfig) -> RepairReport:
    report = repair_store(cfg.store, out=cfg.get("out"), dry_run=bool(cfg.get("dry_run", False)))
    print(report.describe())
    return report


@hydra.main(config_path="conf", config_name="repair_store", version_base=None)
def main(cfg: DictConfig) -> None:
    try:
        run(cfg)
    except StoreError as err:
        raise SystemExit(f"error: {err}") from None


if __name__ == "__main__":
    main()
