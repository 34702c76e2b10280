"""Shared constants of the score tests: tiny score settings and the synthetic decisions they use."""

from __future__ import annotations

import numpy as np

from fiper.scores import ScoreFitData, make_score

TINY = {
    "rnd_oe": dict(target_widths=[16], predictor_widths=[16, 16], out_dim=8, train=dict(lr=1e-3, max_epochs=3, batch_size=16)),
    "ace": dict(dims=[0, 1]),
    "stac": dict(n_action_steps=2, dims=[0, 1]),
    "rnd_a": dict(target_widths=[16], predictor_widths=[16, 16], out_dim=8, samples_per_decision=2, train=dict(lr=1e-3, max_epochs=2, batch_size=16)),
    "logpzo": dict(widths=[16], n_steps=2, train=dict(lr=1e-3, max_epochs=2, batch_size=16)),
    "pca_kmeans": dict(n_components=3, n_clusters=4),
    "mahalanobis": dict(),
    "knn": dict(k=3),
    "elapsed": dict(),
    "projected_duration": dict(k=3),
    "obs_novelty": dict(k=3),  # reads observations: its contract tests are tests/scores/test_obs_novelty.py
    "dynamics_residual": dict(),  # reads observations and samples: its contract tests are tests/scores/test_dynamics_residual.py
    "reconstruction": dict(image_size=8, widths=[4], latent=4, train=dict(max_epochs=2)),  # reads images: tests/scores/test_reconstruction.py
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
        seen = np.random.default_rng([seed, 1])  # raw observations, from their own stream
        self.observations = {"state": seen.normal(size=(n, 3)), "image": seen.integers(0, 256, size=(n, 16, 20, 3), dtype=np.uint8)}

    def fit_data(self, seed: int = 0) -> ScoreFitData:
        return ScoreFitData(self.embeddings, self.samples, self.decision_ends, seed=seed, observations=self.observations)
