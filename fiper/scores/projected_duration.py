"""Projected duration: decisions so far plus the decisions that successful episodes still took from where the
policy is now, read off the k nearest fit decisions in the policy's (standardised) embedding.

The clock (``elapsed``) alarms on a slow episode only once it has outlasted (1 - δ) of the successes. This
score alarms as soon as the episode, continued as the successes nearest in the embedding continued, would
outlast them: an episode that stalls far from the goal is flagged while it stalls, not at its timeout. It is
fitted on in-distribution successes (their decisions and how many decisions each still took to succeed)
and calibrated like every score, so the conformal guarantee holds (docs/scores.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from fiper.scores.inputs import check_decision_ends, index_in_episode
from fiper.scores.knn import KNNDistance


class ProjectedDuration(KNNDistance):
    """Decision index + mean decisions-to-go of the k nearest fit decisions (in decisions)."""

    name = "projected_duration"
    checks_offline_inputs = True  # score_offline checks them through KNNDistance.score_offline

    def __init__(self, k: int = 10, standardize: bool = True, max_reference: int | None = 20000):
        super().__init__(k=k, standardize=standardize, max_reference=max_reference)
        self.remaining: Tensor | None = None
        self._count = 0

    def _fit(self, embeddings: Tensor, samples: None, decision_ends: np.ndarray, seed: int) -> None:
        super()._fit(embeddings, samples, decision_ends, seed)
        n = embeddings.shape[0]
        lengths = np.diff(np.concatenate([[0], decision_ends]))
        remaining = np.repeat(lengths, lengths) - 1 - index_in_episode(decision_ends, n)  # decisions each still took
        remaining = torch.as_tensor(remaining, dtype=self.dtype, device=embeddings.device)
        self.remaining = remaining[self._reference_rows(n, seed).to(embeddings.device)].contiguous()

    def _score(self, embeddings: Tensor, samples: None) -> Tensor:
        """Decisions to go (n,), before the elapsed decisions are added (``_step``, ``score_offline``)."""
        return self.remaining[self._nearest(embeddings).indices].mean(dim=1)

    def reset(self) -> None:
        self._count = 0

    def _step(self, embedding: Tensor, samples: None) -> float:
        with torch.no_grad():
            value = float(self._score(embedding, None)[0]) + self._count
        self._count += 1
        return value

    def score_offline(self, embeddings: Any = None, samples: Any = None, decision_ends: Any = None) -> np.ndarray:
        to_go = super().score_offline(embeddings, samples, decision_ends)
        ends = check_decision_ends(self.name, decision_ends, len(to_go))
        return to_go + index_in_episode(ends, len(to_go))

    def _tensors(self) -> dict[str, Tensor]:
        return {**super()._tensors(), "remaining": self.remaining}

    def _load_tensors(self, tensors: Mapping[str, Tensor]) -> None:
        super()._load_tensors(tensors)
        (self.remaining,) = self._take(tensors, "remaining")
