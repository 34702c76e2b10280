"""The raw observation each decision saw, read from a store's per-step data when sliced.

Rollout stores record the observation keys of every env step as ``data/<key>`` (the control
loop's ``record_keys``, by default the policy's keys, those a monitor's score reads and the env's other small keys) and each decision's env step within its
episode as ``decisions/env_step``, so decision i saw ``data/<key>[episode start + env_step[i]]``.
Scores that read the observation (``"observation" in score.needs``) get a mapping key -> rows
(N, *shape), one row per decision; these views keep images on disk until a score slices them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from fiper.scores.inputs import READ_BLOCK_BYTES, read_rows, row_nbytes
from fiper.storage.lerobot_import import BOOKKEEPING as LEROBOT_BOOKKEEPING

#: Per-step keys of a store that are not observations: the action, and what recorders log beside the observation
#: (gymnasium's step results, clocks and counters, lerobot's bookkeeping and next.* columns). A wall-clock time read
#: as an observation would tell rollouts apart by when they were recorded.
NOT_OBSERVED = ("action", "reward", "done", "terminated", "truncated", "success", "is_success", "wall_time", *LEROBOT_BOOKKEEPING)

RECORD_FIX = ("record the observation keys with the rollouts (launch.stress record_keys=[...]; the default records the "
              "policy's keys and the env's other small ones), or drop the score (launch.evaluate: '~methods.obs_novelty' "
              "'~methods.fiper_obs_or_joint' and "
              "references=[elapsed])")


def _take(array: Any, steps: np.ndarray) -> np.ndarray:
    """``array[steps]`` (steps in any order): one slice over their span when it is small, else per run."""
    if steps.size == 0:
        return np.empty((0, *array.shape[1:]), dtype=array.dtype)
    lo, hi = int(steps.min()), int(steps.max()) + 1
    if (hi - lo) * row_nbytes(array) <= READ_BLOCK_BYTES:
        return np.asarray(array[lo:hi])[steps - lo]
    order = np.argsort(steps, kind="stable")
    out = np.empty((steps.size, *array.shape[1:]), dtype=array.dtype)
    out[order] = read_rows(array, steps[order])
    return out


class StepRows:
    """One observation key at N decisions: rows of per-step arrays (one per store) at given steps."""

    def __init__(self, parts: Sequence[tuple[Any, np.ndarray]]):
        if not parts:
            raise ValueError("StepRows needs at least one (per-step array, steps) part")
        shapes = {tuple(int(s) for s in a.shape[1:]) for a, _ in parts}
        if len(shapes) != 1:
            raise ValueError(f"the stores record this observation with different shapes {sorted(shapes)}; evaluate them separately")
        self.parts = [(a, np.asarray(s, dtype=np.int64)) for a, s in parts]
        self.bounds = np.cumsum([0] + [s.size for _, s in self.parts])
        self.shape = (int(self.bounds[-1]), *shapes.pop())
        self.dtype = np.dtype(self.parts[0][0].dtype)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def _rows(self, key: Any) -> np.ndarray:
        if isinstance(key, slice):
            start, stop, step = key.indices(self.shape[0])
            return np.arange(start, max(start, stop), step, dtype=np.int64)
        rows = np.asarray(key)
        if rows.ndim != 1 or (rows.size and rows.dtype.kind not in "iu"):
            raise IndexError(f"observation rows take a slice or a 1-D integer row array, got {key!r:.60}")
        if rows.size and (rows.min() < 0 or rows.max() >= self.shape[0]):
            raise IndexError(f"observation rows outside [0, {self.shape[0]})")
        return rows.astype(np.int64)

    def __getitem__(self, key: Any) -> np.ndarray:
        rows = self._rows(key)
        out = np.empty((rows.size, *self.shape[1:]), dtype=self.dtype)
        part = np.searchsorted(self.bounds, rows, side="right") - 1
        for i in np.unique(part):
            sel = part == i
            array, steps = self.parts[i]
            out[sel] = _take(array, steps[rows[sel] - self.bounds[i]])
        return out

    def select(self, rows: Any) -> StepRows:
        """The same key at the decisions ``rows``, in that order (a lazy view)."""
        rows = self._rows(rows)
        if rows.size == 0:
            return StepRows([(self.parts[0][0], np.zeros(0, np.int64))])
        part = np.searchsorted(self.bounds, rows, side="right") - 1
        cuts = np.flatnonzero(np.diff(part) != 0) + 1
        return StepRows([(self.parts[int(p[0])][0], self.parts[int(p[0])][1][r - self.bounds[int(p[0])]])
                         for r, p in zip(np.split(rows, cuts), np.split(part, cuts))])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype)


class DecisionObservations(Mapping):
    """key -> StepRows of the same N decisions; ``source`` names where they come from and ``problem``
    why it holds none, when it could not be read (both for the error of a score that needs them)."""

    def __init__(self, columns: Mapping[str, StepRows], n_decisions: int, source: str, problem: str = ""):
        self.columns, self.n_decisions, self.source, self.problem = dict(columns), int(n_decisions), source, problem
        for key, col in self.columns.items():
            if len(col) != self.n_decisions:
                raise ValueError(f"observation {key!r} of {source} has {len(col)} rows for {self.n_decisions} decisions")

    def __getitem__(self, key: str) -> StepRows:
        if key not in self.columns:
            raise KeyError(f"{self.source} records no observation {key!r} (it has {sorted(self.columns) or 'none'}); "
                           f"{self.problem or RECORD_FIX}")
        return self.columns[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.columns)

    def __len__(self) -> int:
        return len(self.columns)

    def select(self, rows: Any) -> DecisionObservations:
        """The observations of the decisions ``rows`` (a slice or row indices), still lazy."""
        picked = {k: c.select(rows) for k, c in self.columns.items()}
        n = len(next(iter(picked.values()))) if picked else len(np.arange(self.n_decisions)[rows])
        return DecisionObservations(picked, n, self.source, self.problem)


def is_observed(key: str) -> bool:
    """Whether a per-step key of a store holds an observation (not the action, a label, a clock or a counter)."""
    return key not in NOT_OBSERVED and not key.startswith("next.")


def observed_keys(store: Any) -> list[str]:
    """The per-step keys of a store that hold observations."""
    return [k for k in store.data_keys if is_observed(k)]


def bookkeeping_keys(store: Any) -> list[str]:
    """The per-step keys of a store that are neither the action nor observations (rewards, clocks, counters)."""
    return [k for k in store.data_keys if k != "action" and not is_observed(k)]


def attr_n_action_steps(attrs: Mapping[str, Any]) -> int | None:
    """Env steps per decision from store attrs: top level, else inside the 'policy' or 'env' attrs (None: not recorded)."""
    for source in (attrs, attrs.get("policy"), attrs.get("env")):
        value = source.get("n_action_steps") if isinstance(source, Mapping) else None
        if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
            return int(value)
    return None


def _recorded_steps(store: Any, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each recorded decision's env step within its episode, and the decisions per episode."""
    slices = [store.decision_slice(int(i)) for i in idx]
    lengths = np.array([sl.stop - sl.start for sl in slices], dtype=np.int64)
    if "env_step" in store.decision_keys:
        rows = store.decision_rows(idx)
        return (np.asarray(store.decision_array("env_step")[:], dtype=np.int64)[rows] if rows.size else np.zeros(0, np.int64)), lengths
    every = attr_n_action_steps(store.attrs) or 0
    if every < 1:
        raise ValueError(f"{store.path} records no decisions/env_step and no n_action_steps attr, so the observation "
                         "each decision saw is unknown; write each decision's env step within its episode to "
                         "decisions/env_step, or the env steps per decision to the attrs (n_action_steps)")
    local = np.concatenate([np.arange(n, dtype=np.int64) * every for n in lengths]) if idx.size else np.zeros(0, np.int64)
    return local, lengths


def decision_steps(store: Any, episodes: Any = None, local: Any = None, counts: Any = None) -> np.ndarray:
    """Global step index of every decision of ``episodes`` (all by default), in episode order: from
    decisions/env_step, or from ``local`` steps within the episodes and ``counts`` decisions per episode
    (decisions replayed on a store that records none)."""
    idx = np.arange(store.n_episodes) if episodes is None else np.asarray(episodes, dtype=np.int64).reshape(-1)
    if local is None:
        local, lengths = _recorded_steps(store, idx)
    else:
        local, lengths = np.asarray(local, dtype=np.int64), np.asarray(counts, dtype=np.int64)
    starts = np.array([store.episode_slice(int(i)).start for i in idx], dtype=np.int64)
    steps_len = np.array([store.episode_slice(int(i)).stop - store.episode_slice(int(i)).start for i in idx], dtype=np.int64)
    own = np.repeat(np.arange(idx.size), lengths)
    bad = np.flatnonzero((local < 0) | (local >= steps_len[own]))
    if bad.size:
        e = int(idx[own[bad[0]]])
        raise ValueError(f"{store.path}: a decision of episode {e} has env_step {int(local[bad[0]])} outside its "
                         f"{int(steps_len[own[bad[0]]])} recorded steps; the store is inconsistent (repair it: python -m launch.repair_store)")
    return starts[own] + local


def store_observations(store: Any, episodes: Any = None, local: Any = None, counts: Any = None) -> DecisionObservations:
    """The observation of every decision of ``episodes`` of an EpisodeStore, lazily (``local`` / ``counts``:
    see ``decision_steps``). A store whose decisions cannot be placed gives none, saying why: only a
    score that reads the observation needs them, and its error names the problem."""
    try:
        steps = decision_steps(store, episodes, local, counts)
    except ValueError as err:
        n = int(np.sum(counts)) if local is not None else int(store.decision_rows(np.arange(store.n_episodes) if episodes is None else episodes).size)
        return DecisionObservations({}, n, str(store.path), str(err))
    columns = {k: StepRows([(store.data_array(k), steps)]) for k in observed_keys(store)}
    return DecisionObservations(columns, steps.size, str(store.path))


def merged_observations(stores: Sequence[Any], episodes: Sequence[Any]) -> DecisionObservations:
    """Observations of several stores' decisions concatenated in order (``episodes[i]`` of ``stores[i]``);
    only the keys every store records."""
    steps = [decision_steps(s, e) for s, e in zip(stores, episodes)]
    common = [k for k in observed_keys(stores[0]) if all(k in observed_keys(s) for s in stores[1:])]
    columns = {k: StepRows([(s.data_array(k), st) for s, st in zip(stores, steps)]) for k in common}
    source = ", ".join(str(s.path) for s in stores)
    return DecisionObservations(columns, int(sum(s.size for s in steps)), source)


def rollout_observations(paths: Sequence[Any], store_index: np.ndarray, episode_index: np.ndarray) -> DecisionObservations:
    """Observations of a merged rollout set's decisions (fiper.evaluation's RolloutSet: its ``stores``,
    ``store_index`` and ``episode_index``), in its order: store by store, episodes as listed."""
    from fiper.storage import EpisodeStore

    stores = [EpisodeStore.open(p) for p in paths]
    episodes = [np.asarray(episode_index)[np.asarray(store_index) == i] for i in range(len(stores))]
    return merged_observations(stores, episodes)
