"""Start poses the policy was trained from: the first measured robot position of every demonstration.

A response that returns the robot to the training distribution needs a place the policy has
started from; the demonstrations' initial positions are such places, and the nearest one (by
Euclidean distance in the position dims) is the shortest way back.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


class StartPoses:
    """Start rows (N, W) in the layout of the observation entry they were read from, and optionally
    each demonstration's first action (N, A): what the robot commanded at the start (e.g. an open gripper)."""

    def __init__(self, rows: Any, actions: Any = None, source: str = "start_poses"):
        arr = np.asarray(rows, dtype=np.float64)
        if arr.ndim == 1 and arr.size:
            arr = arr[None]
        if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
            raise ValueError(f"{source} has shape {arr.shape}; give one start pose per row, e.g. [[0.0, 0.0, 0.15]]")
        bad = ~np.isfinite(arr).all(axis=1)
        if bad.any():
            raise ValueError(f"{source} rows {np.flatnonzero(bad).tolist()} hold NaN or inf: remove them or repair the source")
        self.rows, self.source = arr, source
        self.actions = None
        if actions is not None:
            acts = np.asarray(actions, dtype=np.float64).reshape(len(arr), -1)
            if not np.isfinite(acts).all():
                raise ValueError(f"{source}: the first actions hold NaN or inf: repair the demonstration store")
            self.actions = acts

    @staticmethod
    def check_store(path: str | os.PathLike) -> None:
        """Refuse a demonstration store path that does not exist, naming the fix."""
        if not Path(path).exists():
            raise FileNotFoundError(f"demos={str(path)!r} does not exist: give the demonstration store the policy was "
                                    "trained on (e.g. runs/demo/demos.zarr), or start_poses=[[...], ...]")

    @classmethod
    def from_store(cls, path: str | os.PathLike, key: str = "agent_pos") -> StartPoses:
        """The first ``key`` row (and first action) of every successful, unshifted episode of a demonstration store."""
        from fiper.storage import EpisodeStore

        cls.check_store(path)
        store = EpisodeStore.open(path)
        if key not in store.data_keys:
            raise KeyError(f"{path} has no data key {key!r} (it has {store.data_keys}): set start_key (or "
                           "context.agent_pos_key) to the observation entry that holds the robot's measured position")
        keep = np.ones(store.n_episodes, dtype=bool)
        if "success" in store.meta_keys:
            keep &= store.meta("success").astype(bool)
        if "shift" in store.meta_keys:
            keep &= np.asarray([str(s) == "none" for s in store.meta("shift")])
        if not keep.any():
            raise ValueError(f"{path} has no successful episode without a shift to learn start poses from: "
                             "collect in-distribution demonstrations (python -m launch.collect)")
        starts = (store.episode_ends - store.episode_lengths)[keep]
        rows = np.asarray(store.data_array(key)[:], dtype=np.float64)[starts]
        actions = np.asarray(store.data_array("action")[:], dtype=np.float64)[starts] if "action" in store.data_keys else None
        return cls(rows.reshape(len(starts), -1), actions, source=f"{path}:{key}")

    def positions(self, dims: Sequence[int]) -> np.ndarray:
        """The start positions (N, len(dims)) picked from each row."""
        dims = [int(d) for d in dims]
        if max(dims) >= self.rows.shape[1]:
            raise ValueError(f"{self.source} rows have {self.rows.shape[1]} entries; agent_pos_dims={dims} index past them: "
                             "read the start poses from the observation entry the context measures (start_key)")
        return self.rows[:, dims]

    def nearest(self, position: np.ndarray, dims: Sequence[int]) -> int:
        """Index of the start pose nearest to ``position`` (Euclidean, in the position dims)."""
        return int(np.argmin(np.linalg.norm(self.positions(dims) - np.asarray(position, dtype=np.float64), axis=1)))
