"""Elapsed time: the decision's index within its episode (0, 1, 2, ...), a reference, not a monitor of the policy.

It reads neither embedding nor samples. Calibrated with window 1 and a constant threshold it alarms
once an episode outlasts (1 - δ) of the successful in-distribution calibration episodes: the detector
a learned score must beat to show it sees more than "this is taking too long" (docs/scores.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from fiper.scores.base import ScoreBase
from fiper.scores.inputs import check_decision_ends, index_in_episode


class ElapsedTime(ScoreBase):
    """Decisions since the episode started: 0 at the first decision, then 1, 2, ..."""

    name = "elapsed"
    needs = frozenset()
    dtype = torch.float64
    backend = "numpy"
    checks_offline_inputs = True  # score_offline checks decision_ends, all it reads

    def __init__(self) -> None:
        super().__init__()
        self._count = 0

    def _fit(self, embeddings: None, samples: None, decision_ends: np.ndarray, seed: int) -> None:
        return None  # no parameters: the clock needs calibration only

    def _score(self, embeddings: None, samples: None) -> np.ndarray:
        """The next decision of the running episode (online): its index, then the clock advances.
        A whole store is scored from its episode ends instead (``score_offline``)."""
        value, self._count = self._count, self._count + 1
        return np.array([value], dtype=np.float64)

    def reset(self) -> None:
        self._count = 0

    def score_offline(self, embeddings: Any = None, samples: Any = None, decision_ends: Any = None) -> np.ndarray:
        """Each decision's index within its episode, from ``decision_ends`` alone."""
        self._require_fitted()
        if decision_ends is None:
            raise ValueError(f"{self.name} counts decisions per episode: pass decision_ends (meta/decision_ends)")
        raw = np.asarray(decision_ends)
        ends = check_decision_ends(self.name, raw, int(raw[-1]) if raw.ndim == 1 and raw.size else 0)
        return index_in_episode(ends, int(ends[-1]) if ends.size else 0)
