"""Mahalanobis distance of the (standardised) embedding to the training embeddings (METHOD §6).

The covariance is shrunk toward a scaled identity, S* = (1 - s) S + s (tr S / D) I, with s given
or estimated by Ledoit-Wolf, so that the inverse stays well-conditioned when N is not >> D.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor

from fiper.nn import fit_standardizer
from fiper.scores.base import ScoreBase


def ledoit_wolf_shrinkage(xc: Tensor) -> float:
    """Ledoit-Wolf shrinkage intensity in [0, 1] for centred rows xc (n, p)."""
    n, p = xc.shape
    s = xc.T @ xc / n
    mu = float(torch.trace(s)) / p
    delta = float((s - mu * torch.eye(p, dtype=xc.dtype, device=xc.device)).pow(2).sum()) / p
    beta = (float(xc.pow(2).sum(dim=1).pow(2).sum()) / n - float(s.pow(2).sum())) / (n * p)
    return 0.0 if delta <= 0 else float(min(max(beta, 0.0), delta) / delta)


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
        n, p = xc.shape
        s = xc.T @ xc / n
        alpha = self._config["shrinkage"]
        alpha = ledoit_wolf_shrinkage(xc) if alpha is None else alpha
        scale = float(torch.trace(s)) / p
        eye = torch.eye(p, dtype=xc.dtype, device=xc.device)
        cov = (1 - alpha) * s + alpha * (scale if scale > 0 else 1.0) * eye
        chol, info = torch.linalg.cholesky_ex(cov)
        if int(info) != 0:  # singular sample covariance and no shrinkage: add the smallest ridge that works
            cov = cov + 1e-6 * (scale if scale > 0 else 1.0) * eye
            chol = torch.linalg.cholesky(cov)
        self.whiten = torch.linalg.solve_triangular(chol, eye, upper=False)  # L^-1: ||L^-1 d|| = Mahalanobis
        self.shrinkage_used = float(alpha)

    def _score(self, embeddings: Tensor, samples: None) -> Tensor:
        d = (embeddings - self.mean) / self.std
        return torch.linalg.vector_norm(d @ self.whiten.T, dim=1)

    def _tensors(self) -> dict[str, Tensor]:
        return {"mean": self.mean, "std": self.std, "whiten": self.whiten}

    def _load_tensors(self, tensors: Mapping[str, Tensor]) -> None:
        self.mean, self.std, self.whiten = self._take(tensors, "mean", "std", "whiten")
