"""Mahalanobis distance of the (standardised) embedding to the training embeddings (docs/method.md §6).

The covariance is shrunk toward a scaled identity, S* = (1 - s) S + s (tr S / D) I, with s given
or estimated by Ledoit-Wolf, so that the inverse stays well-conditioned when N is not >> D.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor

from fiper.nn import fit_standardizer, fit_whitener
from fiper.scores.base import ScoreBase


class Mahalanobis(ScoreBase):
    """sqrt((z - mu)^T S*^-1 (z - mu)) in standardised embedding space."""

    name = "mahalanobis"
    needs = frozenset({"embedding"})
    dtype = torch.float64

    def __init__(self, shrinkage: float | None = None, standardize: bool = True):
        if shrinkage is not None and not 0.0 <= float(shrinkage) <= 1.0:
            raise ValueError(f"{self.name}: shrinkage must lie in [0, 1] or be None (Ledoit-Wolf), got {shrinkage}")
        super().__init__(shrinkage=None if shrinkage is None else float(shrinkage), standardize=bool(standardize))
        self.mean = self.std = self.whiten = None
        self.shrinkage_used: float | None = None

    def _fit(self, embeddings: Tensor, samples: None, decision_ends: np.ndarray, seed: int) -> None:
        if self._config["standardize"]:
            self.mean, self.std = fit_standardizer(embeddings)
        else:
            self.mean, self.std = embeddings.mean(dim=0), torch.ones_like(embeddings[0])
        xc = (embeddings - self.mean) / self.std
        self.whiten, self.shrinkage_used = fit_whitener(xc, self._config["shrinkage"])

    def _score(self, embeddings: Tensor, samples: None) -> Tensor:
        d = (embeddings - self.mean) / self.std
        return torch.linalg.vector_norm(d @ self.whiten.T, dim=1)

    def _tensors(self) -> dict[str, Tensor]:
        return {"mean": self.mean, "std": self.std, "whiten": self.whiten}

    def _load_tensors(self, tensors: Mapping[str, Tensor]) -> None:
        self.mean, self.std, self.whiten = self._take(tensors, "mean", "std", "whiten")
