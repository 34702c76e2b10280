"""Training windows over a store: observation history + action horizon, edge-padded per episode.

For a decision at step t of an episode spanning [s, e)::

    obs steps:     t-n_obs+1 .. t        (indices below s repeat step s)
    action steps:  t .. t+horizon-1      (indices at or past e repeat step e-1)

Every step of every episode is one window, so the policy learns to act from the first step and
to hold still at the end, as in diffusion_policy's sequence sampler.

Columns that do not fit in memory are read from their zarr chunks through a bounded cache of
decoded chunks; ``epoch_order`` visits every window once per epoch in an order that decodes each
chunk about once (docs/rollout_format.md, "Training windows").
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from fiper.storage.layout import TARGET_CHUNK_BYTES
from fiper.storage.store import EpisodeStore

IN_MEMORY_LIMIT_BYTES = 2 << 30
CACHE_BYTES = 256 << 20


class ChunkCache:
    """Decoded chunks by (key, chunk index), least recently used evicted past ``max_bytes``."""

    def __init__(self, max_bytes: int):
        self.max_bytes, self.nbytes = int(max_bytes), 0
        self._chunks: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return len(self._chunks)

    def get(self, key: tuple[str, int]) -> np.ndarray | None:
        chunk = self._chunks.get(key)
        if chunk is not None:
            self._chunks.move_to_end(key)
        return chunk

    def put(self, key: tuple[str, int], chunk: np.ndarray) -> None:
        if key in self._chunks or chunk.nbytes > self.max_bytes:
            return
        self._chunks[key] = chunk
        self.nbytes += chunk.nbytes
        while self.nbytes > self.max_bytes:
            self.nbytes -= self._chunks.popitem(last=False)[1].nbytes


class TrainingWindows:
    """Indexable set of (obs history, action chunk) windows; gathers batches with array indexing.

    ``in_memory='auto'`` holds columns in memory, smallest first, while they fit in ``memory_limit``
    bytes together; the others are read from disk through a cache of ``cache_bytes`` of decoded chunks
    (a batch whose new chunks would not fit reads only its rows, and caches nothing).
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
        memory_limit: int = IN_MEMORY_LIMIT_BYTES,
        cache_bytes: int = CACHE_BYTES,
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
        keys = list(dict.fromkeys([*self.obs_keys, action_key]))
        held = keys if in_memory is True else [] if in_memory is False else self._fitting(keys, memory_limit)
        self._columns = {k: store.read_data(k) for k in held}
        self.on_disk = [k for k in keys if k not in self._columns]
        self.cache = ChunkCache(cache_bytes)
        self.chunk_reads = 0  # chunks decoded from disk so far

    def _fitting(self, keys: list[str], limit: int) -> list[str]:
        """Keys to hold in memory: smallest columns first while the total stays under ``limit``."""
        held, total = [], 0
        for key in sorted(keys, key=self.column_bytes):
            if total + self.column_bytes(key) >= limit:
                break
            held.append(key)
            total += self.column_bytes(key)
        return held

    def column_bytes(self, key: str) -> int:
        """Bytes of the store's column ``key`` once decoded."""
        arr = self.store.data_array(key)
        return int(self.store.n_steps * np.prod(arr.shape[1:], dtype=np.int64) * arr.dtype.itemsize)

    def chunk_bytes(self, key: str) -> int:
        """Bytes of one decoded time chunk of column ``key``."""
        arr = self.store.data_array(key)
        return int(np.prod(arr.chunks, dtype=np.int64) * arr.dtype.itemsize)

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

    def epoch_order(self, rng: np.random.Generator) -> np.ndarray:
        """Every window once: blocks of consecutive steps (whole chunks of the on-disk columns, about 1 MiB of them) in
        random order, windows shuffled within pools of blocks filling half the cache (all in memory: a permutation)."""
        if not self.on_disk:
            return rng.permutation(len(self))
        shortest = min(self.store.data_array(k).chunks[0] for k in self.on_disk)
        step_bytes = sum(self.column_bytes(k) for k in self.on_disk) / max(1, self.store.n_steps)
        target = min(TARGET_CHUNK_BYTES, self.cache.max_bytes / 16)
        step = shortest * max(1, int(target // (step_bytes * shortest)))
        pool = max(1, int(self.cache.max_bytes // (2 * step * step_bytes)))
        blocks, block_of = np.unique(self._t // step, return_inverse=True)
        rank = np.empty(len(blocks), dtype=np.int64)
        rank[rng.permutation(len(blocks))] = np.arange(len(blocks))
        return np.lexsort((rng.random(len(self)), rank[block_of] // pool))

    def _gather(self, key: str, rows: np.ndarray) -> np.ndarray:
        if key in self._columns:
            return self._columns[key][rows]
        arr = self.store.data_array(key)
        c, n = arr.chunks[0], arr.shape[0]
        unique, inverse = np.unique(rows, return_inverse=True)
        chunk_ids, first = np.unique(unique // c, return_index=True)
        found = {int(k): self.cache.get((key, int(k))) for k in chunk_ids}
        missing = [k for k, v in found.items() if v is None]
        if len(missing) * self.chunk_bytes(key) > self.cache.max_bytes:
            self.chunk_reads += len(chunk_ids)
            block = arr.oindex[unique]  # too many chunks to keep: read only the rows, from every chunk they touch
            return block[inverse.reshape(rows.shape)]
        self.chunk_reads += len(missing)
        for k in missing:
            found[k] = arr[k * c:min((k + 1) * c, n)]
            self.cache.put((key, k), found[k])
        block = np.empty((len(unique), *arr.shape[1:]), dtype=arr.dtype)
        bounds = [*first[1:], len(unique)]
        for k, a, b in zip(chunk_ids.tolist(), first.tolist(), bounds):
            block[a:b] = found[k][unique[a:b] - k * c]
        return block[inverse.reshape(rows.shape)]
