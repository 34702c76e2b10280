"""The in-distribution decisions a score is fitted on (``ScoreFitData``), checked on construction, and read from a store."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from fiper.scores.inputs import check_decision_ends
from fiper.scores.observations import store_observations


def warn_unselected(store: Any, caller: str) -> None:
    """Warn that every episode of ``store`` was read although it labels some failed or shifted: scores fitted or
    thresholds calibrated on those rise above them and hide failures."""
    keys, n = set(store.meta_keys), store.n_episodes
    failed = int((~store.meta("success").astype(bool)).sum()) if "success" in keys else 0
    shifted = int((store.meta("shift").astype(str) != "none").sum()) if "shift" in keys else 0
    if failed or shifted:
        warnings.warn(f"{caller} read all {n} episodes of {store.path}, {failed} failed and {shifted} shifted among them: "
                      "fitting or calibrating a monitor on them raises its thresholds and hides failures; pass "
                      "episodes=successful_in_distribution(store) (fiper.monitor.decision_data; this warning is expected "
                      "when scoring a test store)", UserWarning, stacklevel=3)


@dataclass
class ScoreFitData:
    """In-distribution decisions a score is fitted on.

    ``embeddings`` (N, D) and ``samples`` (N, B, H, A) (either or both may be None when no score
    being fitted reads it), ``decision_ends`` (E,) cumulative episode ends (meta/decision_ends),
    ``seed`` for every random choice of the fit, ``device`` where the fitted score lives,
    ``observations`` {key: (N, *shape)} the raw observation each decision saw, for scores that
    read it (``fiper.scores.observations``; None when none does).
    """

    embeddings: Any
    samples: Any
    decision_ends: Any
    seed: int = 0
    device: str | torch.device = "cpu"
    observations: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        n = None
        for what, value, ndim in (("embeddings", self.embeddings, 2), ("samples", self.samples, 4)):
            if value is None:
                continue
            shape = tuple(value.shape)
            if len(shape) != ndim:
                want = "(N, D)" if ndim == 2 else "(N, B, H, A)"
                raise ValueError(f"ScoreFitData: {what} must be {want}, got shape {shape}")
            if n is not None and shape[0] != n:
                raise ValueError(f"ScoreFitData: embeddings hold {n} decisions but samples hold {shape[0]}")
            n = shape[0]
        if n is None:  # only scores that read neither (e.g. elapsed, obs_novelty): the episodes alone
            ends = np.asarray(self.decision_ends)
            n = int(ends[-1]) if ends.ndim == 1 and ends.size else 0
        for key, rows in (self.observations or {}).items():
            if len(rows) != n:
                raise ValueError(f"ScoreFitData: observation {key!r} holds {len(rows)} decisions but the fit data holds {n}")
        if n == 0:
            raise ValueError("ScoreFitData holds no decisions; fit on at least one in-distribution episode")
        self.decision_ends = check_decision_ends("ScoreFitData", self.decision_ends, n)
        self.device = torch.device(self.device)

    @property
    def n_decisions(self) -> int:
        return int(self.decision_ends[-1])

    @classmethod
    def from_store(cls, store: Any, *, episodes: Any = None, samples: bool = True, embeddings: bool = True,
                   seed: int = 0, device: str | torch.device = "cpu", observations: bool = False) -> ScoreFitData:
        """Read decisions/embedding and decisions/samples of (some) episodes of an EpisodeStore;
        ``observations=True`` adds each decision's recorded observation (lazy, read when a score slices it)."""
        ends = store.decision_ends
        if episodes is None:
            warn_unselected(store, "ScoreFitData.from_store")
        idx = np.arange(len(ends)) if episodes is None else np.asarray(episodes, dtype=np.int64).reshape(-1)
        slices = [store.decision_slice(int(i)) for i in idx]
        lengths = np.array([s.stop - s.start for s in slices], dtype=np.int64)
        rows = np.concatenate([np.arange(s.start, s.stop) for s in slices]) if slices else np.zeros(0, np.int64)

        def read(key: str) -> np.ndarray:
            arr = store.decision_array(key)
            contiguous = len(rows) and np.all(np.diff(rows) == 1)
            return arr[int(rows[0]) : int(rows[-1]) + 1] if contiguous else arr.get_orthogonal_selection((rows,))

        return cls(
            embeddings=read("embedding") if embeddings else None,
            samples=read("samples") if samples else None,
            decision_ends=np.cumsum(lengths),
            seed=seed,
            device=device,
            observations=store_observations(store, idx) if observations else None,
        )
