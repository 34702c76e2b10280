"""An episode checked before EpisodeStore appends it: every key of a group as long as the episode, labels given,
and the same keys, per-row shapes and dtypes as the episodes already stored. A refusal writes nothing.

Mixed into EpisodeStore (fiper.storage.store).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from fiper.storage.errors import StoreError
from fiper.storage.layout import GROUPS, INTERNAL_META, refuse_unstorable


def _as_rows(name: str, value: Any, n_rows: int | None = None) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind == "O":
        arr = arr.astype(str)
    if arr.ndim == 0:
        raise StoreError(f"'{name}' must have a leading time axis, got a scalar")
    if n_rows is not None and arr.shape[0] != n_rows:
        raise StoreError(f"'{name}' has {arr.shape[0]} rows but the episode has {n_rows}; give every key of one group the same length")
    return arr


class EpisodeChecks:
    """The checks of an episode to append; expects ``path``, ``n_episodes``, ``_data``, ``_decisions`` and
    ``_meta`` from the store."""

    path: Path
    n_episodes: int
    _data: dict[str, zarr.Array]
    _decisions: dict[str, zarr.Array]
    _meta: dict[str, zarr.Array]

    def _validate_episode(self, data: Mapping[str, Any], decisions: Mapping[str, Any], meta: Mapping[str, Any]) -> dict:
        if not data:
            raise StoreError("an episode needs at least one per-step array in `data` (e.g. 'action')")
        first = next(iter(data))
        n_steps = np.asarray(data[first]).shape[0] if np.ndim(data[first]) else 0
        if n_steps < 1:
            raise StoreError(f"an episode needs at least one step; '{first}' has none")
        out = {"data": {k: _as_rows(k, v, n_steps) for k, v in data.items()}, "n_steps": n_steps}
        n_dec = np.asarray(next(iter(decisions.values()))).shape[0] if decisions else 0
        out["decisions"] = {k: _as_rows(k, v, n_dec) for k, v in decisions.items()}
        out["n_decisions"] = n_dec
        unset = sorted(k for k, v in meta.items() if v is None)
        if unset:
            raise StoreError(f"meta {unset} given as None, which would be stored as the text 'None': give '' for no text "
                             "label (failure_reason of a success), -1 for no step (failure_step), or leave the key out; "
                             "nothing was written")
        out["meta"] = {k: np.asarray([v]) for k, v in meta.items()}
        refuse_unstorable({group: out[group] for group in GROUPS})
        if self.n_episodes:
            self._check_keys("data", self._data, out["data"])
            if self._decisions or out["decisions"]:
                self._check_keys("decisions", self._decisions, out["decisions"])
            self._check_keys("meta", {k: v for k, v in self._meta.items() if k not in INTERNAL_META}, out["meta"])
        for group, arrays in (("data", self._data), ("decisions", self._decisions), ("meta", self._meta)):
            for key, value in out[group].items():
                if key in arrays and arrays[key].dtype.kind not in "UOT" and tuple(arrays[key].shape[1:]) != value.shape[1:]:
                    raise StoreError(f"{group}/{key}: expected per-row shape {tuple(arrays[key].shape[1:])}, got {value.shape[1:]}")
                if key in arrays and arrays[key].dtype.kind not in "UOT" and not np.can_cast(value.dtype, arrays[key].dtype, "same_kind"):
                    raise StoreError(f"{group}/{key}: the store holds {np.dtype(arrays[key].dtype)} but this episode gives "
                                     f"{value.dtype} ({value.ravel()[:3].tolist()}); convert it before appending "
                                     f"(every episode of a store has the same dtype per key); nothing was written")
        return out

    def _check_keys(self, group: str, existing: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        missing, extra = sorted(set(existing) - set(new)), sorted(set(new) - set(existing))
        if missing or extra:
            fill = ("; a label that only some episodes have is given to all, e.g. a success's failure_reason '' and "
                    "failure_step -1, shift 'none', severity 0") if group == "meta" else ""
            how = (f" (the store's earlier episodes were appended without {extra}: write it anew with the keys in every "
                   "episode)") if extra else ""
            raise StoreError(
                f"episode keys do not match {self.path}/{group}: missing {missing}, unexpected {extra}; "
                f"every episode of a store must carry the same keys{how}{fill}"
            )
