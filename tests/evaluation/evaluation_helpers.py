"""Shared settings of the offline-evaluation tests: a small delta grid, store sizes, tiny scores."""

from __future__ import annotations

from fiper.evaluation import EvaluationConfig

DELTAS = (0.1, 0.15, 0.2)
SIZES = dict(n_success_id=30, n_success_ood=8, n_fail_id=10, n_fail_ood=10)  # per run; two runs are merged
ONE_RUN = dict(n_success_id=50, n_success_ood=8, n_fail_id=12, n_fail_ood=10)  # enough ID successes alone

# Every registered score, sized to fit in well under a second each on one CPU thread.
TINY_SCORES = {
    "rnd_oe": {"score": "rnd_oe", "target_widths": [32], "predictor_widths": [32, 32], "out_dim": 16,
               "train": {"lr": 3e-3, "max_epochs": 15, "patience": 5, "batch_size": 128}},
    "ace": {"score": "ace", "kappa": 0.03, "dims": [0, 1]},
    "stac": {"score": "stac", "n_action_steps": None, "dims": None},
    "rnd_a": {"score": "rnd_a", "target_widths": [16], "predictor_widths": [16, 16], "out_dim": 8, "samples_per_decision": 2,
              "train": {"lr": 3e-3, "max_epochs": 4, "batch_size": 128}},
    "logpzo": {"score": "logpzo", "widths": [16], "train": {"lr": 3e-3, "max_epochs": 4, "batch_size": 128}},
    "pca_kmeans": {"score": "pca_kmeans", "n_components": 4, "n_clusters": 8},
    "mahalanobis": {"score": "mahalanobis"},
    "knn": {"score": "knn", "k": 3},
    "elapsed": {"score": "elapsed"},
    "obs_novelty": {"score": "obs_novelty"},
    "reconstruction": {"score": "reconstruction", "image_size": 8, "widths": [4], "latent": 4, "train": {"max_epochs": 2}},
    "projected_duration": {"score": "projected_duration", "k": 3},
}


def small_config(**overrides) -> EvaluationConfig:
    values = dict(deltas=DELTAS, scores=TINY_SCORES, progress=False, plot_delta=0.1)
    values.update(overrides)
    return EvaluationConfig.from_mapping(values)
