"""Shared fixtures of the score tests: single-threaded torch, synthetic decisions, AUROC."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fiper.scores import ScoreFitData, make_score


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny networks run fastest on one thread (and the test machine's cores are shared)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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
TINY = {
    "rnd_oe": dict(target_widths=[16], predictor_widths=[16, 16], out_dim=8, train=dict(lr=1e-3, max_epochs=3, batch_size=16)),
    "ace": dict(dims=[0, 1]),
    "stac": dict(n_action_steps=2, dims=[0, 1]),
    "rnd_a": dict(target_widths=[16], predictor_widths=[16, 16], out_dim=8, samples_per_decision=2, train=dict(lr=1e-3, max_epochs=2, batch_size=16)),
    "logpzo": dict(widths=[16], n_steps=2, train=dict(lr=1e-3, max_epochs=2, batch_size=16)),
    "pca_kmeans": dict(n_components=3, n_clusters=4),
    "mahalanobis": dict(),
    "knn": dict(k=3),
}


class Decisions:
    """A small store's worth of decisions: E episodes of varying length, embeddings (N, D), samples (N, B, H, A)."""

    def __init__(self, seed: int, lengths=(5, 7, 3, 6), dim: int = 8, shape=(6, 5, 3)):
        g = np.random.default_rng(seed)
        self.decision_ends = np.cumsum(lengths).astype(np.int64)
        n = int(self.decision_ends[-1])
        self.embeddings = g.normal(size=(n, dim)).astype(np.float32)
        offset = g.normal(size=(n, 1, 1, shape[2]))
        self.samples = (offset + g.normal(size=(n, *shape))).astype(np.float32)

    def fit_data(self, seed: int = 0) -> ScoreFitData:
        return ScoreFitData(self.embeddings, self.samples, self.decision_ends, seed=seed)


@pytest.fixture(scope="session")
def fitted_scores():
    """Every registered score, tiny, fitted once on the same decisions."""
    torch.set_num_threads(1)
    data = Decisions(seed=1)
    return {name: make_score(name, **cfg).fit(data.fit_data()) for name, cfg in TINY.items()}


@pytest.fixture(scope="session")
def decisions():
    return Decisions(seed=2)
