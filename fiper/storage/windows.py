"""Training windows over a store: observation history + action horizon, edge-padded per episode.

For a decision at step t of an episode spanning [s, e)::

    obs steps:     t-n_obs+1 .. t        (indices below s repeat step s)
    action steps:  t .. t+horizon-1      (indices at or past e repeat step e-1)

Every step of every episode is one window, so the policy learns to act from the first step and
to hold still at the end, as in diffusion_policy's sequence sampler.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fiper.storage.store import EpisodeStore

IN_MEMORY_LIMIT_BYTES = 2 << 30


class TrainingWindows:
    """Indexable set of (obs history, action chunk) windows; gathers batches with array indexing.

    Columns are read into memory when they fit (``in_memory='auto'``: under 2 GiB together);
    otherwise each batch reads only the rows it needs from the zarr chunks.
    """

    def __init__(
        self,
        store: EpisodeStore,
        obs_keys: Sequence[str],
        n_obs_steps: int,
        horizon: int,
        *,
        action_key: str = "action",
        episodes: Sequence[int] | None = None,
        in_memory: bool | str = "auto",
    ):
        if n_obs_steps < 1 or horizon < 1:
            raise ValueError(f"n_obs_steps and horizon must be >= 1, got {n_obs_steps}, {horizon}")
        if store.n_episodes == 0:
            raise ValueError(f"{store.path} holds no complete episode to train on")
        for key in [*obs_keys, action_key]:
            if key not in store.data_keys:
                raise KeyError(f"{store.path} has no data/{key}; available: {store.data_keys}")
        self.store, self.obs_keys, self.action_key = store, list(obs_keys), action_key
        self.n_obs_steps, self.horizon = n_obs_steps, horizon
        episodes = np.arange(store.n_episodes) if episodes is None else np.asarray(episodes, dtype=np.int64)
        ends = store.episode_ends
        starts = np.concatenate([[0], ends[:-1]])
        self.episodes = episodes
        lengths = ends[episodes] - starts[episodes]
        # One window per step: global step index plus its episode bounds.
        self._t = np.concatenate([np.arange(starts[e], ends[e]) for e in episodes])
        self._lo = np.repeat(starts[episodes], lengths)
        self._hi = np.repeat(ends[episodes], lengths)
        keys = [*self.obs_keys, action_key]
        if in_memory == "auto":
            size = sum(store.data_array(k).nbytes * store.n_steps / max(1, store.data_array(k).shape[0]) for k in keys)
            in_memory = size < IN_MEMORY_LIMIT_BYTES
        self._columns = {k: store.read_data(k) for k in keys} if in_memory else None

    def __len__(self) -> int:
        return len(self._t)

    def indices(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Global row indices (len(idx), n_obs) and (len(idx), horizon) for windows ``idx``."""
        t, lo, hi = self._t[idx, None], self._lo[idx, None], self._hi[idx, None]
        obs_idx = np.maximum(t + np.arange(-self.n_obs_steps + 1, 1), lo)
        act_idx = np.minimum(t + np.arange(self.horizon), hi - 1)
        return obs_idx, act_idx

    def batch(self, idx: Sequence[int] | np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Observations {key: (b, n_obs, ...)} and actions (b, horizon, A) for windows ``idx``."""
        obs_idx, act_idx = self.indices(np.asarray(idx, dtype=np.int64))
        obs = {k: self._gather(k, obs_idx) for k in self.obs_keys}
        return obs, self._gather(self.action_key, act_idx)

    def _gather(self, key: str, rows: np.ndarray) -> np.ndarray:
        if self._columns is not None:
            return self._columns[key][rows]
        unique, inverse = np.unique(rows, return_inverse=True)
        block = self.store.data_array(key).oindex[unique]  # reads only the chunks it touches
        return block[inverse.reshape(rows.shape)]
