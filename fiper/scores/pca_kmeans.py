"""PCA-kmeans: distance of the embedding to the nearest k-means centre in a PCA space (docs/method.md §6).

Embeddings are standardised, projected on their first ``n_components`` principal axes, and
clustered into ``n_clusters`` centres (seeded k-means++ init, Lloyd iterations). Both sizes are
clipped to what the data supports (components <= min(N, D), centres <= N).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor

from fiper.nn import fit_standardizer
from fiper.scores.base import ScoreBase


def kmeans_pp_init(x: Tensor, k: int, gen: torch.Generator) -> Tensor:
    """k-means++ seeding: each new centre drawn with probability proportional to squared distance."""
    n = x.shape[0]
    first = int(torch.randint(n, (1,), generator=gen))
    centres = [x[first]]
    d2 = (x - x[first]).pow(2).sum(dim=1)
    for _ in range(1, k):  # k centre draws; each is one vectorised pass over the data
        total = float(d2.sum())
        probs = (d2 / total) if total > 0 else torch.full_like(d2, 1.0 / n)
        idx = int(torch.multinomial(probs.cpu().float(), 1, generator=gen))
        centres.append(x[idx])
        d2 = torch.minimum(d2, (x - x[idx]).pow(2).sum(dim=1))
    return torch.stack(centres)


def kmeans(x: Tensor, k: int, *, seed: int, max_iter: int = 100, tol: float = 1e-6) -> Tensor:
    """Lloyd's k-means from a k-means++ init; empty clusters keep their previous centre. Returns (k, d)."""
    gen = torch.Generator().manual_seed(seed)
    centres = kmeans_pp_init(x, k, gen)
    ones = torch.ones(x.shape[0], dtype=x.dtype, device=x.device)
    for _ in range(max_iter):
        assign = torch.cdist(x, centres).argmin(dim=1)
        sums = torch.zeros_like(centres).index_add_(0, assign, x)
        counts = torch.zeros(k, dtype=x.dtype, device=x.device).index_add_(0, assign, ones)
        new = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None], centres)
        shift = float((new - centres).pow(2).sum(dim=1).max())
        centres = new
        if shift <= tol:
            break
    return centres


class PCAKMeans(ScoreBase):
    """Distance to the nearest of ``n_clusters`` k-means centres in ``n_components``-dim PCA space."""

    name = "pca_kmeans"
    needs = frozenset({"embedding"})
    dtype = torch.float64

    def __init__(self, n_components: int = 10, n_clusters: int = 64, max_iter: int = 100, tol: float = 1e-6):
        if int(n_components) < 1 or int(n_clusters) < 1 or int(max_iter) < 1:
            raise ValueError(f"{self.name}: n_components, n_clusters and max_iter must be >= 1, got {n_components}, {n_clusters}, {max_iter}")
        if not tol >= 0:
            raise ValueError(f"{self.name}: tol must be >= 0, got {tol}")
        super().__init__(n_components=int(n_components), n_clusters=int(n_clusters), max_iter=int(max_iter), tol=float(tol))
        self.mean = self.std = self.components = self.centres = None

    def _fit(self, embeddings: Tensor, samples: None, decision_ends: np.ndarray, seed: int) -> None:
        self.mean, self.std = fit_standardizer(embeddings)
        x = (embeddings - self.mean) / self.std  # centred by construction
        n_comp = min(self._config["n_components"], *x.shape)
        _, _, vh = torch.linalg.svd(x, full_matrices=False)
        self.components = vh[:n_comp].contiguous()  # (C, D)
        proj = x @ self.components.T
        k = min(self._config["n_clusters"], x.shape[0])
        self.centres = kmeans(proj, k, seed=seed, max_iter=self._config["max_iter"], tol=self._config["tol"])

    def _score(self, embeddings: Tensor, samples: None) -> Tensor:
        proj = ((embeddings - self.mean) / self.std) @ self.components.T
        d2 = (proj.pow(2).sum(dim=1, keepdim=True) + self.centres.pow(2).sum(dim=1) - 2.0 * proj @ self.centres.T)
        return d2.clamp_min(0.0).min(dim=1).values.sqrt()

    def _chunk_rows(self) -> int:
        return max(1, self.chunk_elements // max(self.embedding_dim, self.centres.shape[0]))

    def _tensors(self) -> dict[str, Tensor]:
        return {"mean": self.mean, "std": self.std, "components": self.components, "centres": self.centres}

    def _load_tensors(self, tensors: Mapping[str, Tensor]) -> None:
        self.mean, self.std, self.components, self.centres = self._take(tensors, "mean", "std", "components", "centres")
