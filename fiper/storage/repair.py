"""Rebuild a damaged store from every committed episode that still reads back intact.

``scan_store`` reads each committed episode (all its steps, decisions and labels, checked against
its checksum record and its chunk files); ``repair_store`` copies the intact ones into a fresh
store and swaps it in, keeping the damaged original as ``<store>.damaged-<time>``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fiper.storage.errors import DamagedStoreError, StoreError
from fiper.storage.store import EpisodeStore, _plain
from fiper.storage.writer_lock import writer_of


@dataclass
class ScanReport:
    """What a scan found: intact and damaged committed episodes (with the reason)."""

    path: Path
    n_committed: int
    intact: list[int] = field(default_factory=list)
    damaged: dict[int, str] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not self.damaged


@dataclass
class RepairOutcome:
    scan: ScanReport
    written: Path | None  # the repaired store (None: nothing to repair or a dry run)
    backup: Path | None  # where the damaged original now lives

    def describe(self) -> str:
        s = self.scan
        lines = [f"{s.path}: {s.n_committed} committed episodes, {len(s.intact)} intact, {len(s.damaged)} damaged"]
        lines += [f"  episode {i}: {why}" for i, why in sorted(s.damaged.items())]
        if self.written is None:
            lines.append("  nothing written" + (" (dry run)" if s.damaged else ": the store is intact"))
        else:
            lines.append(f"  wrote the {len(s.intact)} intact episodes to {self.written}")
            if self.backup is not None:
                lines.append(f"  the damaged original is kept at {self.backup}")
        return "\n".join(lines)


def episode_rows(store: EpisodeStore, i: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None, dict[str, Any]]:
    """Steps, decisions and labels of episode ``i``, every read checked (raises DamagedStoreError)."""
    data = store.episode(i)
    decisions = store.episode_decisions(i) if len(store.decision_ends) == store.n_episodes and store.decision_ends.size else None
    labels = {k: _plain(store._lookup(store._meta, "meta", k)[i : i + 1])[0] for k in store.meta_keys}
    return data, decisions, labels


def _problem(err: DamagedStoreError) -> str:
    return str(err).split(" is damaged", 1)[-1].split(": ", 1)[-1].split(". Fix:")[0]


def scan_store(path: str | os.PathLike) -> ScanReport:
    """Check every committed episode of ``path``; raises DamagedStoreError when the episodes cannot be
    located at all (commit record or metadata lost)."""
    store = EpisodeStore._open_unchecked(path)
    report = ScanReport(Path(path), store.n_episodes)
    _, lost, _, _ = store._lost_rows()
    try:
        bad_records = store._check_records()
    except DamagedStoreError as err:
        raise DamagedStoreError(path, f"its checksum records cannot be read ({_problem(err)}), so no episode can be verified",
                                array=err.array, files=err.files, fix="restore the store, or its meta/episode_checksums, from a copy") from err
    report.damaged.update({i: f"{err.array}: {_problem(err)}" for i, err in bad_records.items()})
    for i in range(store.n_episodes):
        if i in report.damaged:
            continue
        if i in lost:
            report.damaged[i] = "chunk files are missing or an array is shorter than the episode records"
            continue
        try:
            episode_rows(store, i)
        except DamagedStoreError as err:
            report.damaged[i] = f"{err.array}: {_problem(err)}"
            continue
        report.intact.append(i)
    return report


def repair_store(path: str | os.PathLike, *, out: str | os.PathLike | None = None, dry_run: bool = False) -> RepairOutcome:
    """Copy the intact committed episodes of ``path`` into a new store.

    With ``out`` the copy goes there and the original is untouched; otherwise the copy replaces
    ``path`` and the original is renamed ``<path>.damaged-<UTC time>`` (nothing is deleted). An
    intact store is left alone.
    """
    path = Path(path)
    scan = scan_store(path)
    if scan.clean or dry_run:
        return RepairOutcome(scan, None, None)
    if out is None and (holder := writer_of(path)):
        raise StoreError(f"{path} is being written by another process ({holder}): replaced now, that process would go on "
                         "writing into the moved original and its episodes would be lost. Repair once it has ended, or "
                         "into a copy now (out=<new path>)")
    if not scan.intact:
        raise DamagedStoreError(path, "no committed episode reads back intact, so nothing was written",
                                episodes=sorted(scan.damaged), fix="restore the store from a copy")
    source = EpisodeStore._open_unchecked(path)
    source._check_records()  # the copy reads are checked as the scan's were
    target = Path(out) if out is not None else path.with_name(path.name + ".repairing")
    if target.exists():
        raise StoreError(f"{target} already exists; remove it or pass another output path")
    attrs = {k: v for k, v in source.attrs.items() if k != "store_id"}  # renumbered episodes: a store of its own
    fresh = EpisodeStore.create(target, attrs={**attrs, "repaired_from": {"store_id": source.attrs.get("store_id"), "path": str(path),
                                                                          "episodes": scan.intact}})
    for i in scan.intact:
        data, decisions, labels = episode_rows(source, i)
        fresh.append_episode(data, decisions=decisions, meta=labels)
    check = EpisodeStore.open(target)
    if check.n_episodes != len(scan.intact):
        raise StoreError(f"the repaired copy {target} holds {check.n_episodes} episodes, expected {len(scan.intact)}; "
                         f"{path} is unchanged")
    if out is not None:
        return RepairOutcome(scan, target, None)
    backup = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
    os.replace(path, backup)
    os.replace(target, path)
    return RepairOutcome(scan, path, backup)
