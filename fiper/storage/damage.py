"""Finding damage in an opened EpisodeStore: truncated or missing chunk files, garbled checksum
records, reads that fail to decode, and values that do not match the recorded checksums.

Mixed into EpisodeStore (fiper.storage.store); every finding is a DamagedStoreError naming the
store, the array, the files and the committed episodes affected, and the fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from fiper.storage.errors import DamagedStoreError, repair_command
from fiper.storage.integrity import CHECKSUM_KEY, digest, entry_past_shape, missing_chunk_files, parse_record, undecodable_chunks
from fiper.storage.layout import COMMIT_KEY


class DamageChecks:
    """Integrity checks of EpisodeStore; expects ``path``, ``_data``, ``_decisions``, ``_meta``,
    ``_episode_ends`` and ``decision_ends`` from the store."""

    path: Path
    _data: dict[str, zarr.Array]
    _decisions: dict[str, zarr.Array]
    _meta: dict[str, zarr.Array]
    _episode_ends: np.ndarray
    _records: list[dict[str, Any] | None]

    def _committed_prefix(self, ends: np.ndarray, commit: zarr.Array) -> int:
        """Leading episodes whose commit record was fully written; a damaged record raises DamagedStoreError.

        Only the last entry may be unfinished (an interrupted commit resizes, then writes it); an
        earlier entry that does not increase, or a lost chunk before the last entry, is damage.
        """
        n = len(ends)
        lost = [f for i, f in missing_chunk_files(self.path, f"meta/{COMMIT_KEY}", commit, n) if i * commit.chunks[0] < n - 1]
        if lost:
            raise DamagedStoreError(self.path, "chunk files of the commit record are missing, so its episodes cannot be located; "
                                    "no repair can recover them", array=f"meta/{COMMIT_KEY}",
                                    files=[f"meta/{COMMIT_KEY}/{f}" for f in lost], fix="restore the store from a copy")
        bad = np.flatnonzero(np.diff(np.concatenate([[0], ends])) <= 0)
        rows = {int(a.shape[0]) for a in self._data.values()}
        # another writer's per-episode lengths: they sum to the data rows; increasing ones too when no checksum record
        # (which append_episode writes) says an append was interrupted after the last end
        lengths = n > 1 and (ends > 0).all() and rows == {int(ends.sum())} and (len(bad) or CHECKSUM_KEY not in self._meta)
        if lengths or (len(bad) and (bad[0] < n - 1 or ends[-1] != 0)) or entry_past_shape(self.path / "meta" / COMMIT_KEY, commit, ends):
            at = int(bad[0]) if len(bad) else n
            if lengths:
                raise DamagedStoreError(self.path, f"meta/{COMMIT_KEY} holds {ends[:4].tolist()} ..., which sum to the "
                                        f"{int(ends.sum())} rows of data/: each episode's length, where the store keeps each "
                                        "episode's cumulative end row", array=f"meta/{COMMIT_KEY}",
                                        fix=f"write np.cumsum of the lengths to meta/{COMMIT_KEY} (EpisodeStore.append_episode "
                                        "writes it so; docs/rollout_format.md)")
            raise DamagedStoreError(self.path, f"its commit record is corrupt from entry {at} on (ends {ends[max(0, at - 1): at + 2].tolist()}"
                                    f"{'' if len(bad) else ', and a further entry past its recorded shape'}), so its episodes cannot "
                                    "be located; no repair can recover the episodes from there on", array=f"meta/{COMMIT_KEY}",
                                    episodes=range(at, n), fix="restore the store from a copy")
        return int(bad[0]) if len(bad) else n  # an end written as fill value: the commit did not finish

    # ------------------------------------------------------------------ rows <-> episodes
    def _row_ends(self, group: str) -> np.ndarray:
        if group == "data":
            return self._episode_ends
        if group == "decisions":
            return self.decision_ends
        return np.arange(1, len(self._episode_ends) + 1, dtype=np.int64)

    def _episodes_of_rows(self, group: str, start: int, stop: int) -> list[int]:
        """Committed episodes with at least one row in [start, stop)."""
        ends = self._row_ends(group)
        starts = np.concatenate([[0], ends[:-1]]) if len(ends) else ends
        return [int(i) for i in np.flatnonzero((starts < stop) & (ends > start) & (ends > starts))]

    def _fix(self, keep: int, total: int) -> str:
        return (f"run `{repair_command(self.path)}` to rebuild it from every readable episode (the damaged store is kept as a "
                f"backup), open it with drop_incomplete=True to read the {keep} leading intact episodes of {total}, "
                "or restore the missing files from a copy")

    # ------------------------------------------------------------------ on open
    def _lost_rows(self) -> tuple[list[str], set[int], list[str], str | None]:
        """Arrays shorter than the episode records or missing chunk files: (problems, damaged
        episodes, missing files, first array concerned)."""
        problems, damaged, files, array = [], set(), [], None
        for group, arrays in (("data", self._data), ("decisions", self._decisions), ("meta", self._meta)):
            ends = self._row_ends(group)
            need = int(ends[-1]) if len(ends) else 0
            for key, arr in arrays.items():
                if group == "meta" and key == "episode_ends":
                    continue
                name = f"{group}/{key}"
                have = int(arr.shape[0])
                missing = missing_chunk_files(self.path, name, arr, min(have, need))
                if have >= need and not missing:
                    continue
                damaged.update(self._episodes_of_rows(group, have, need))
                c = arr.chunks[0]
                for k, f in missing:
                    damaged.update(self._episodes_of_rows(group, k * c, (k + 1) * c))
                    files.append(f"{name}/{f}")
                problems.append(f"{name} lacks chunk file(s) {', '.join(f for _, f in missing[:4])}; the episode records need {need} rows"
                                if missing else f"{name} holds {have} rows but the episode records need {need}")
                array = array or name
        return problems, damaged, files, array

    def _check_complete(self, drop_incomplete: bool) -> None:
        """Every array holds the rows and chunk files the committed episodes need, and the checksum
        records agree with the episode records; else DamagedStoreError, or with ``drop_incomplete``
        keep the leading episodes before the first damage."""
        total = len(self._episode_ends)
        problems, damaged, files, array = self._lost_rows()
        try:
            bad_records = self._check_records()
        except DamagedStoreError:
            if not problems:
                raise
            bad_records = {}  # the truncation below is the first thing to report
        keep = min([*damaged, *bad_records, total])
        if keep == total:
            return
        if not drop_incomplete:
            if problems:
                raise DamagedStoreError(self.path, "truncated: " + "; ".join(problems) + f". The first {keep} of {total} episodes are complete",
                                        array=array, files=files, episodes=sorted(damaged), fix=self._fix(keep, total))
            raise bad_records[keep]
        self._episode_ends = self._episode_ends[:keep]
        self._records = self._records[:keep]
        self._decision_ends_cache = None
        self._dropped = total - keep

    def _check_records(self) -> dict[int, DamagedStoreError]:
        """Parse the checksum records and compare them with the episode records; the episodes whose
        record is garbled or disagrees, each with its error (their records are not used)."""
        total = len(self._episode_ends)
        self._records, bad = [None] * total, {}
        if CHECKSUM_KEY not in self._meta or total == 0 or self._meta[CHECKSUM_KEY].shape[0] < total:
            return bad  # no records (an older store), or a short array reported by _lost_rows
        name = f"meta/{CHECKSUM_KEY}"
        texts = self._checked(name, self._meta[CHECKSUM_KEY])[:total].tolist()
        lengths = np.diff(np.concatenate([[0], self._episode_ends]))
        self._decision_ends_cache = None
        dec_ends = self.decision_ends
        dec_lengths = np.diff(np.concatenate([[0], dec_ends])) if len(dec_ends) == total else None
        present = {f"{g}/{k}" for g, arrays in (("data", self._data), ("decisions", self._decisions), ("meta", self._meta)) for k in arrays}
        records = []
        for i, text in enumerate(texts):
            problem, array = None, "meta/episode_ends"
            try:
                record = parse_record(str(text))
            except ValueError as err:
                record, problem, array = None, f"its checksum record does not parse ({err})", name
            if record is not None:
                if int(record["steps"]) != int(lengths[i]) or (dec_lengths is not None and int(record["decisions"]) != int(dec_lengths[i])):
                    problem = (f"its commit record says {int(lengths[i])} steps"
                               + (f" and {int(dec_lengths[i])} decisions" if dec_lengths is not None else "")
                               + f" but it was written with {record['steps']} steps and {record['decisions']} decisions")
                lost = sorted(set(record["crc32"]) - present)
                if lost:
                    problem, array = f"it was written with {', '.join(lost)}, which the store no longer has (metadata lost)", lost[0]
            if problem:
                bad[i] = DamagedStoreError(self.path, problem, array=array, episodes=[i], fix=self._fix(i, total))
                record = None
            records.append(record)
        self._records = records
        self._decision_ends_cache = None  # read again, now checked against the records
        return bad

    # ------------------------------------------------------------------ on read
    def _checked(self, name: str, arr: zarr.Array):
        from fiper.storage.checked import CheckedArray

        return CheckedArray(arr, self, name)

    def _read_damage(self, name: str, arr: zarr.Array, rows: Any, err: Exception) -> DamagedStoreError:
        """The error for a read of ``name`` that raised ``err``: which chunk files fail and whose episodes they hold."""
        group = name.split("/")[0]
        if isinstance(rows, tuple):
            lo, hi = rows
        elif isinstance(rows, np.ndarray) and rows.size:
            lo, hi = int(rows.min()), int(rows.max()) + 1
        else:
            lo, hi = 0, int(arr.shape[0])
        bad = undecodable_chunks(arr, lo, hi)
        c = arr.chunks[0]
        episodes = sorted({e for i, _ in bad for e in self._episodes_of_rows(group, i * c, (i + 1) * c)})
        return DamagedStoreError(self.path, f"reading it raised {type(err).__name__}: {err}", array=name,
                                 files=[f"{name}/{f}" for _, f in bad], episodes=episodes)

    def _verify_rows(self, name: str, rows: tuple[int, int] | np.ndarray, values: np.ndarray) -> None:
        """Compare every whole episode inside a read with its recorded checksum."""
        if not any(r is not None and name in r["crc32"] for r in self._records):
            return
        group = name.split("/")[0]
        ends = self._row_ends(group)
        starts = np.concatenate([[0], ends[:-1]]) if len(ends) else ends
        found: list[tuple[int, int]] = []  # (episode, offset in values)
        if isinstance(rows, tuple):
            a, b = rows
            found = [(int(i), int(starts[i]) - a) for i in np.flatnonzero((starts >= a) & (ends <= b) & (ends > starts))]
        else:
            uniq, first = np.unique(rows, return_index=True)
            for i in np.flatnonzero(np.isin(starts, uniq) & (ends > starts)):
                j = int(first[np.searchsorted(uniq, starts[i])])
                n = int(ends[i] - starts[i])
                if j + n <= len(rows) and np.array_equal(rows[j : j + n], np.arange(starts[i], ends[i])):
                    found.append((int(i), j))
        bad = []
        for i, off in found:
            record = self._records[i] if i < len(self._records) else None
            want = record["crc32"].get(name) if record else None
            if want is not None and digest(values[off : off + int(ends[i] - starts[i])]) != want:
                bad.append(i)
        if bad:
            raise self._mismatch(name, bad)

    def _mismatch(self, name: str, episodes: Sequence[int]) -> DamagedStoreError:
        group = name.split("/")[0]
        arrays = {"data": self._data, "decisions": self._decisions, "meta": self._meta}[group]
        arr = arrays[name.split("/", 1)[1]]
        ends = self._row_ends(group)
        c = arr.chunks[0]
        chunks = sorted({k for i in episodes for k in range((int(ends[i - 1]) if i else 0) // c, -(-int(ends[i]) // c))})
        sep = arr.metadata.dimension_separator
        files = [f"{name}/{sep.join([str(k)] + ['0'] * (arr.ndim - 1))}" for k in chunks]
        return DamagedStoreError(self.path, "the values read differ from the checksum recorded when the episode was written "
                                 "(a corrupted chunk that still decompressed, or changed array metadata)", array=name,
                                 files=files, episodes=episodes)
