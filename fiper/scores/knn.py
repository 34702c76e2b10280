"""k-NN embedding distance: mean distance to the k nearest training embeddings (docs/method.md §6).

The reference set is the (standardised) training embeddings, optionally a seeded subsample of at
most ``max_reference`` rows to bound memory and per-decision cost; it is saved with the score.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor

from fiper.nn import fit_standardizer
from fiper.scores.base import ScoreBase


class KNNDistance(ScoreBase):
    """Mean Euclidean distance of the standardised embedding to its k nearest reference embeddings."""

    name = "knn"
    needs = frozenset({"embedding"})
    dtype = torch.float64

    def __init__(self, k: int = 5, standardize: bool = True, max_reference: int | None = 20000):
        if int(k) < 1:
            raise ValueError(f"{self.name}: k must be >= 1, got {k}")
        if max_reference is not None and int(max_reference) < 1:
            raise ValueError(f"{self.name}: max_reference must be >= 1 or None (keep all), got {max_reference}")
        super().__init__(k=int(k), standardize=bool(standardize), max_reference=None if max_reference is None else int(max_reference))
        self.mean = self.std = self.reference = None

    def _fit(self, embeddings: Tensor, samples: None, decision_ends: np.ndarray, seed: int) -> None:
        if self._config["standardize"]:
            self.mean, self.std = fit_standardizer(embeddings)
        else:
            self.mean, self.std = torch.zeros_like(embeddings[0]), torch.ones_like(embeddings[0])
        ref = (embeddings - self.mean) / self.std
        self.reference = ref[self._reference_rows(ref.shape[0], seed).to(ref.device)].contiguous()

    def _reference_rows(self, n: int, seed: int) -> Tensor:
        """The fit rows kept as the reference (sorted): all, or a seeded subsample of ``max_reference``."""
        cap = self._config["max_reference"]
        if cap is None or n <= cap:
            return torch.arange(n)
        return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:cap].sort().values

    def _nearest(self, embeddings: Tensor) -> tuple[Tensor, Tensor]:
        """Squared distances (n, k) to the k nearest reference rows and their indices (n, k)."""
        q = (embeddings - self.mean) / self.std
        # ‖q‖² + ‖r‖² − 2 q·r as one fused matmul over the cached reference norms
        ref_sq = self._reference_sq()
        d2 = torch.addmm(ref_sq.expand(q.shape[0], -1), q, self.reference.T, beta=1.0, alpha=-2.0)
        d2 += q.pow(2).sum(dim=1, keepdim=True)
        k = min(self._config["k"], self.reference.shape[0])
        return torch.topk(d2, k, dim=1, largest=False)

    def _score(self, embeddings: Tensor, samples: None) -> Tensor:
        return self._nearest(embeddings).values.clamp_min(0.0).sqrt().mean(dim=1)

    def _reference_sq(self) -> Tensor:
        """Squared norms of the reference rows, computed once per reference tensor."""
        cached = getattr(self, "_ref_sq_cache", None)
        if cached is None or cached[0] is not self.reference:
            cached = (self.reference, self.reference.pow(2).sum(dim=1))
            self._ref_sq_cache = cached
        return cached[1]

    def _chunk_rows(self) -> int:
        return max(1, self.chunk_elements // max(self.embedding_dim, self.reference.shape[0]))

    def _tensors(self) -> dict[str, Tensor]:
        return {"mean": self.mean, "std": self.std, "reference": self.reference}

    def _load_tensors(self, tensors: Mapping[str, Tensor]) -> None:
        self.mean, self.std, self.reference = self._take(tensors, "mean", "std", "reference")
