"""Shared fixtures of the score tests: synthetic decisions, AUROC (one torch thread: tests/conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fiper.scores import make_score
from score_helpers import TINY, Decisions


def rank_auroc(negatives: np.ndarray, positives: np.ndarray) -> float:
    """AUROC of 'positive scores higher' by the Mann-Whitney rank formula (ties count half)."""
    x = np.concatenate([negatives, positives])
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2.0)[inverse]  # 1-based ranks, ties averaged
    n_pos, n_neg = len(positives), len(negatives)
    return float((ranks[n_neg:].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


@pytest.fixture
def auroc():
    return rank_auroc


class Manifold:
    """Embeddings on a noisy 4-dim linear manifold in D dims, with action chunks that depend on them."""

    def __init__(self, dim: int = 16, latent: int = 4, seed: int = 0, horizon: int = 4, action_dim: int = 2, batch: int = 8):
        g = np.random.default_rng(seed)
        self.g, self.dim = g, dim
        self.w = g.normal(size=(latent, dim))
        self.direction = np.sign(self.w[0])  # an off-manifold shift direction
        self.act_map = g.normal(size=(dim, horizon * action_dim)) / np.sqrt(dim)
        self.shape = (batch, horizon, action_dim)

    def embeddings(self, n: int, shift: float = 0.0) -> np.ndarray:
        u = self.g.normal(size=(n, self.w.shape[0]))
        return (u @ self.w + 0.3 * self.g.normal(size=(n, self.dim)) + shift * self.direction).astype(np.float32)

    def samples(self, emb: np.ndarray, shift: float = 0.0) -> np.ndarray:
        b, h, a = self.shape
        mean = (emb @ self.act_map).reshape(len(emb), 1, h, a)
        noise = 0.1 * self.g.normal(size=(len(emb), b, h, a))
        return (mean + noise + shift).astype(np.float32)


@pytest.fixture
def manifold():
    return Manifold()


# Tiny configurations of every registered score (fast enough for the contract tests).
@pytest.fixture(scope="session")
def fitted_scores():
    """Every registered score, tiny, fitted once on the same decisions."""
    torch.set_num_threads(1)
    data = Decisions(seed=1)
    return {name: make_score(name, **cfg).fit(data.fit_data()) for name, cfg in TINY.items()}


@pytest.fixture(scope="session")
def decisions():
    return Decisions(seed=2)
