"""Rebuild a damaged rollout / demonstration store from its intact episodes.

    python -m launch.repair_store <store>              # in place; the original is kept as <store>.damaged-<time>
    python -m launch.repair_store <store> --out <copy>  # write the repaired store elsewhere, original untouched
    python -m launch.repair_store <store> --dry-run     # only report what is damaged

Every committed episode whose steps, decisions and labels read back intact (chunk files present,
decodable, matching their checksum record) is kept; leftovers of an interrupted append are not
episodes and are left out. Nothing is deleted.
"""

from __future__ import annotations

import argparse
import sys

from fiper.storage import StoreError
from fiper.storage.repair import repair_store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m launch.repair_store", description=__doc__.split("\n\n")[0])
    parser.add_argument("store", help="path of the zarr store")
    parser.add_argument("--out", default=None, help="write the repaired store here instead of replacing the original")
    parser.add_argument("--dry-run", action="store_true", help="report damaged episodes, write nothing")
    args = parser.parse_args(argv)
    try:
        report = repair_store(args.store, out=args.out, dry_run=args.dry_run)
    except StoreError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(report.describe())
    return 0


if __name__ == "__main__":
    sys.exit(main())
