"""Episode-atomic zarr store for demonstrations and monitored rollouts (format: docs/rollout_format.md).

Layout (zarr format 2, the diffusion_policy ReplayBuffer layout plus per-decision arrays)::

    data/<key>            (T, ...)   per environment step, episodes concatenated
    decisions/<key>       (N, ...)   per policy decision (embedding, samples, score/<name>, ...)
    meta/episode_ends     (E,) int64 cumulative end step of each episode  <- the commit record
    meta/decision_ends    (E,) int64 cumulative end decision of each episode
    meta/<label>          (E,)       per-episode labels (success, failure_step, shift, ...)

An episode is appended by writing its steps, decisions and labels first, then its checksum
record (``meta/episode_checksums``), and its entry in ``meta/episode_ends`` last, each key written
atomically by the zarr store. A crash at any point leaves rows beyond the last committed end,
which readers ignore and the next append overwrites. Damaged bytes (fiper.storage.damage) raise
DamagedStoreError naming the store, array, file and episodes.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from fiper.storage.checked import CheckedArray
from fiper.storage.codecs import register_needed_codecs
from fiper.storage.damage import DamageChecks
from fiper.storage.episode_checks import EpisodeChecks
from fiper.storage.errors import DamagedStoreError, StoreError, repair_command
from fiper.storage.integrity import CHECKSUM_KEY, broken_metadata, digest, encode_record
from fiper.storage.layout import COMMIT_KEY, DECISION_ENDS_KEY, GROUPS, INTERNAL_META, create_time_array, write_all_chunks
from fiper.storage.writer_lock import (LOCK_FILE, StoreBusyError, busy_message, held_while, hold_writer_lock,
                                       release_writer_lock, writer_of)


def _leaf_arrays(group: zarr.Group, prefix: str = "") -> dict[str, zarr.Array]:
    """All arrays below ``group`` keyed by their relative path ('score/rnd_oe')."""
    out: dict[str, zarr.Array] = {}
    for name, member in group.members():
        key = f"{prefix}{name}"
        if isinstance(member, zarr.Array):
            out[key] = write_all_chunks(member)
        else:
            out.update(_leaf_arrays(member, key + "/"))
    return out


def _plain(arr: np.ndarray) -> np.ndarray:
    """numpy's variable-width StringDType (what zarr returns for text) as a plain '<U' array."""
    arr = np.asarray(arr)
    return np.array(arr.tolist(), dtype=str) if arr.dtype.kind in "TO" else arr


class EpisodeStore(DamageChecks, EpisodeChecks):
    """Append, index and read episodes of a zarr store without loading it into memory."""

    def __init__(self, root: zarr.Group, path: Path, mode: str):
        self.root, self.path, self.mode = root, path, mode
        self._refresh()

    # ------------------------------------------------------------------ opening
    @classmethod
    def create(cls, path: str | os.PathLike, *, attrs: Mapping[str, Any] | None = None, overwrite: bool = False) -> EpisodeStore:
        """Create an empty store; refuses to replace an existing one unless ``overwrite``."""
        path = Path(path)
        if path.exists() and not overwrite:
            if holder := writer_of(path):
                raise StoreBusyError(busy_message(path, holder))
            raise StoreError(f"{path} already exists; open it with EpisodeStore.open(path, mode='a') to append, or pass overwrite=True to replace it")
        path.mkdir(parents=True, exist_ok=True)
        lock = hold_writer_lock(path)  # before anything is replaced: another process may be appending to it
        try:
            for child in path.iterdir():
                if child.name != LOCK_FILE:
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
            root = zarr.open_group(str(path), mode="a", zarr_format=2)
            for g in GROUPS:
                root.require_group(g)
            root["meta"].create_array(COMMIT_KEY, shape=(0,), chunks=(4096,), dtype="int64", fill_value=0)
            root.attrs.update({"store_id": uuid.uuid4().hex, **dict(attrs or {})})  # names this store in a monitor's fit_data
            return held_while(cls(root, path, "a"), lock)
        finally:
            release_writer_lock(lock)  # the store keeps its own hold

    @classmethod
    def open(cls, path: str | os.PathLike, mode: str = "r", *, drop_incomplete: bool = False) -> EpisodeStore:
        """Open an existing store for reading ('r') or appending ('a').

        A store whose arrays hold fewer rows than its episode records say (files lost or copied
        partially), or whose metadata or checksum records are damaged, raises DamagedStoreError
        naming what is missing; ``drop_incomplete=True`` reads the intact leading episodes instead,
        and ``python -m launch.repair_store <path>`` rebuilds the store from every readable episode.
        """
        store = cls._open_unchecked(path, mode)
        try:
            store._check_complete(drop_incomplete)
        except StoreError:
            raise
        except Exception as err:  # a codec or metadata error while checking
            raise DamagedStoreError(path, f"checking it raised {type(err).__name__}: {err}") from err
        return store

    @classmethod
    def _open_unchecked(cls, path: str | os.PathLike, mode: str = "r") -> EpisodeStore:
        """Open without the completeness check: every committed episode, damaged or not (for repair)."""
        path = Path(path)
        if mode not in ("r", "a"):
            raise StoreError(f"mode must be 'r' or 'a', got {mode!r}")
        if not path.exists():
            raise StoreError(f"no store at {path}; record one with `python -m launch.collect out={path}` or EpisodeStore.create")
        was_store = (path / "meta" / COMMIT_KEY).is_dir()
        if not (path / ".zgroup").exists():
            if (path / "zarr.json").exists():  # zarr-python 3's default format, not a damaged format-2 store
                raise StoreError(f"{path} is a zarr format 3 group; fiper reads format 2 (the diffusion_policy layout): write "
                                 "it with zarr.open_group(path, mode='w', zarr_format=2), or through EpisodeStore.create")
            if was_store:
                raise DamagedStoreError(path, "its root .zgroup file is missing", files=[".zgroup"])
            raise StoreError(f"{path} is not a zarr format-2 store (missing .zgroup)")
        broken = broken_metadata(path) if was_store else []
        if broken:
            raise DamagedStoreError(path, "metadata files do not parse or are missing", files=broken)
        register_needed_codecs(path)
        try:
            root = zarr.open_group(str(path), mode="r" if mode == "r" else "r+", zarr_format=2)
            missing = [k for k in ("data", "meta", f"meta/{COMMIT_KEY}") if k not in root]
        except Exception as err:  # zarr raises several types for broken metadata
            if was_store:
                raise DamagedStoreError(path, f"it could not be opened as a zarr group ({type(err).__name__}: {err})") from err
            raise StoreError(f"{path} could not be opened as a zarr group: {err}") from err
        if missing:
            if was_store:
                raise DamagedStoreError(path, f"{', '.join(missing)} cannot be read", files=missing)
            raise StoreError(
                f"{path} is not a fiper / diffusion_policy store: missing {', '.join(missing)} "
                f"(found top-level keys: {sorted(root.keys())})"
            )
        if mode == "a":
            for g in GROUPS:
                root.require_group(g)
        lock = hold_writer_lock(path) if mode == "a" else None  # before reading where the episodes end
        try:
            return held_while(cls(root, path, mode), lock)
        except StoreError:
            raise
        except Exception as err:
            raise DamagedStoreError(path, f"reading its arrays raised {type(err).__name__}: {err}") from err
        finally:
            release_writer_lock(lock)  # the store keeps its own hold; an error leaves none

    @classmethod
    def open_or_create(cls, path: str | os.PathLike, *, attrs: Mapping[str, Any] | None = None) -> EpisodeStore:
        path = Path(path)
        if path.exists():
            return cls.open(path, mode="a")
        return cls.create(path, attrs=attrs)

    # ------------------------------------------------------------------ state
    def _refresh(self) -> None:
        self._data = _leaf_arrays(self.root["data"])
        self._decisions = _leaf_arrays(self.root["decisions"]) if "decisions" in self.root else {}
        self._meta = _leaf_arrays(self.root["meta"])
        commit = self._meta[COMMIT_KEY]
        self._records = []
        ends = np.asarray(self._checked(f"meta/{COMMIT_KEY}", commit)[:], dtype=np.int64)
        self._decision_ends_cache = None
        self._episode_ends = ends[: self._committed_prefix(ends, commit)]
        self._records = [None] * len(self._episode_ends)

    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self.root.attrs)

    def set_attrs(self, **attrs: Any) -> None:
        self._require_writable()
        self.root.attrs.update(attrs)

    @property
    def n_episodes(self) -> int:
        return len(self._episode_ends)

    def __len__(self) -> int:
        return self.n_episodes

    @property
    def episode_ends(self) -> np.ndarray:
        return self._episode_ends.copy()

    @property
    def episode_lengths(self) -> np.ndarray:
        return np.diff(np.concatenate([[0], self._episode_ends]))

    @property
    def n_steps(self) -> int:
        return int(self._episode_ends[-1]) if self.n_episodes else 0

    @property
    def decision_ends(self) -> np.ndarray:
        if DECISION_ENDS_KEY not in self._meta:
            return np.zeros(0, dtype=np.int64)
        if self._decision_ends_cache is None or len(self._decision_ends_cache) != self.n_episodes:
            arr = self._meta[DECISION_ENDS_KEY]
            self._decision_ends_cache = np.asarray(self._checked(f"meta/{DECISION_ENDS_KEY}", arr)[: self.n_episodes], dtype=np.int64)
        return self._decision_ends_cache.copy()

    @property
    def n_decisions(self) -> int:
        ends = self.decision_ends
        return int(ends[-1]) if len(ends) else 0

    @property
    def data_keys(self) -> list[str]:
        return sorted(self._data)

    @property
    def decision_keys(self) -> list[str]:
        return sorted(self._decisions)

    @property
    def meta_keys(self) -> list[str]:
        return sorted(k for k in self._meta if k not in INTERNAL_META)

    def data_array(self, key: str) -> CheckedArray:
        """The lazily read zarr array ``data/<key>`` (rows past ``n_steps`` are uncommitted); damaged
        bytes read through it raise DamagedStoreError."""
        return self._lookup(self._data, "data", key)

    def decision_array(self, key: str) -> CheckedArray:
        return self._lookup(self._decisions, "decisions", key)

    def _lookup(self, arrays: dict[str, zarr.Array], group: str, key: str) -> CheckedArray:
        if key not in arrays:
            raise KeyError(f"{self.path} has no {group}/{key}; available: {sorted(arrays)}")
        return self._checked(f"{group}/{key}", arrays[key])

    # ------------------------------------------------------------------ reading
    def _episode_index(self, i: int) -> int:
        if not -self.n_episodes <= i < self.n_episodes:
            raise IndexError(f"episode {i} out of range: {self.path} holds {self.n_episodes} episodes")
        return i % self.n_episodes

    def episode_slice(self, i: int) -> slice:
        i = self._episode_index(i)
        return slice(int(self._episode_ends[i - 1]) if i else 0, int(self._episode_ends[i]))

    def decision_slice(self, i: int) -> slice:
        i = self._episode_index(i)
        ends = self.decision_ends
        if len(ends) < self.n_episodes:
            raise KeyError(f"{self.path} records no decisions (meta/{DECISION_ENDS_KEY} missing)")
        return slice(int(ends[i - 1]) if i else 0, int(ends[i]))

    def decision_rows(self, episodes: Iterable[int]) -> np.ndarray:
        """Decision row indices (int64) of ``episodes``, concatenated in the given order."""
        slices = [self.decision_slice(int(i)) for i in episodes]
        return np.concatenate([np.arange(s.start, s.stop, dtype=np.int64) for s in slices]) if slices else np.zeros(0, np.int64)

    def episode(self, i: int, keys: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """All (or the named) per-step arrays of episode ``i``."""
        sl = self.episode_slice(i)
        return {k: _plain(self.data_array(k)[sl]) for k in (keys or self.data_keys)}

    def episode_decisions(self, i: int, keys: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        sl = self.decision_slice(i)
        return {k: _plain(self.decision_array(k)[sl]) for k in (keys or self.decision_keys)}

    def steps(self, key: str, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) of ``data/<key>``, within the committed region."""
        if not 0 <= start <= stop <= self.n_steps:
            raise IndexError(f"steps [{start}, {stop}) outside the {self.n_steps} committed steps of {self.path}")
        return self.data_array(key)[start:stop]

    def meta(self, key: str) -> np.ndarray:
        """Per-episode labels ``meta/<key>`` for the committed episodes."""
        return _plain(self._lookup(self._meta, "meta", key)[: self.n_episodes])

    def read_data(self, key: str) -> np.ndarray:
        """The whole committed ``data/<key>`` column (for low-dim arrays that fit in memory)."""
        return self.data_array(key)[: self.n_steps]

    def read_decisions(self, key: str) -> np.ndarray:
        return _plain(self.decision_array(key)[: self.n_decisions])

    # ------------------------------------------------------------------ writing
    def _require_writable(self) -> None:
        if getattr(self, "_dropped", 0):
            raise StoreError(f"{self.path} was opened with drop_incomplete=True and {self._dropped} damaged or incomplete "
                             "episodes after the intact ones were left out; appending would overwrite them. Run "
                             f"`{repair_command(self.path)}` first (it keeps every intact episode)")
        if self.mode == "r":
            raise StoreError(f"{self.path} was opened read-only; open it with mode='a' to append")

    def append_episode(
        self,
        data: Mapping[str, Any],
        *,
        decisions: Mapping[str, Any] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> int:
        """Append one episode atomically and return its index.

        ``data`` maps keys to per-step arrays (T, ...), ``decisions`` to per-decision arrays
        (N, ...) (nested names such as 'score/ace' allowed), ``meta`` to one label each.
        """
        self._require_writable()
        rows = self._validate_episode(data, decisions or {}, meta or {})
        n_steps, n_dec = self.n_steps, self.n_decisions
        crcs = self._write_rows("data", self._data, rows["data"], n_steps)
        if decisions is not None:
            crcs |= self._write_rows("decisions", self._decisions, rows["decisions"], n_dec)
            new_dec = {DECISION_ENDS_KEY: np.array([n_dec + rows["n_decisions"]], dtype=np.int64)}
            crcs |= self._write_rows("meta", self._meta, new_dec, self.n_episodes)
        crcs |= self._write_rows("meta", self._meta, rows["meta"], self.n_episodes)
        record = encode_record(rows["n_steps"], rows["n_decisions"], crcs)
        self._write_rows("meta", self._meta, {CHECKSUM_KEY: np.array([record])}, self.n_episodes)
        # The commit: once this entry exists the episode is part of the store.
        commit = self._meta[COMMIT_KEY]
        end = n_steps + rows["n_steps"]
        commit.resize((self.n_episodes + 1,))
        commit[self.n_episodes] = end
        self._episode_ends = np.append(self._episode_ends, np.int64(end))
        self._records.append(json.loads(record))
        self._decision_ends_cache = None
        return self.n_episodes - 1

    def _write_rows(self, group: str, arrays: dict[str, zarr.Array], rows: Mapping[str, np.ndarray], start: int) -> dict[str, int]:
        """Write rows from ``start`` on; returns the checksum of each key's rows as stored."""
        crcs = {}
        for key, value in rows.items():
            arr = arrays.get(key)
            if arr is None:
                arr = arrays[key] = create_time_array(self.root[group], key, value)
                if start:  # a label added later: earlier episodes get the fill value
                    arr.resize((start, *arr.shape[1:]))
            if arr.dtype.kind not in "UOT" and np.dtype(arr.dtype) != value.dtype:
                value = value.astype(arr.dtype, casting="same_kind")
            arr.resize((start + value.shape[0], *arr.shape[1:]))
            arr[start:] = value
            crcs[f"{group}/{key}"] = digest(value)
        return crcs
