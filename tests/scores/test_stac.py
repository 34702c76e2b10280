"""STAC: MMD^2 of overlapping consecutive batches, ~0 for one distribution, growing with the distance."""

from __future__ import annotations

import numpy as np
import torch

from fiper.scores import STAC, ScoreFitData
from fiper.scores.stac import mmd2_rbf_median


def _fitted(samples: np.ndarray, **kwargs) -> STAC:
    return STAC(**kwargs).fit(ScoreFitData(None, samples, [len(samples)]))


def _naive_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    z = np.concatenate([x, y])
    sq = np.array([[np.sum((a - b) ** 2) for b in z] for a in z])
    pairs = np.sort(sq[np.triu_indices(len(z), 1)])
    gamma = 1.0 / (2.0 * pairs[(len(pairs) - 1) // 2])  # lower median
    k = np.exp(-gamma * sq)
    n = len(x)
    return k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean()


def test_mmd_matches_a_direct_computation():
    g = np.random.default_rng(0)
    x, y = g.normal(size=(5, 6)), g.normal(size=(5, 6)) + 0.7
    got = mmd2_rbf_median(torch.from_numpy(x)[None], torch.from_numpy(y)[None])
    assert abs(float(got[0]) - _naive_mmd2(x, y)) < 1e-12
    assert float(got[0]) > 0.05


def test_overlap_aligns_old_steps_k_to_h_with_new_steps_0_to_h_minus_k():
    g = np.random.default_rng(1)
    b, h, a, k = 16, 8, 3, 3
    score = _fitted(g.normal(size=(4, b, h, a)), n_action_steps=k, dims=[0, 1])
    old = g.normal(size=(b, h, a))
    new = np.empty_like(old)
    new[:, : h - k] = old[:, k:]  # the same future, re-predicted
    new[:, h - k :] = 50.0 * g.normal(size=(b, k, a))  # beyond the overlap: irrelevant
    new[..., 2] = 1e3  # dropped gripper dim: irrelevant
    score.reset()
    assert score.step(None, old) == 0.0  # first decision of an episode
    assert abs(score.step(None, new)) < 1e-12


def test_same_distribution_scores_near_zero_and_grows_monotonically_with_distance():
    g = np.random.default_rng(2)
    b, h, a, k = 64, 8, 2, 4
    score = _fitted(g.normal(size=(4, b, h, a)), n_action_steps=k)
    previous = g.normal(size=(b, h, a))
    base = g.normal(size=(b, h, a))
    values = []
    for distance in [0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0]:
        score.reset()
        score.step(None, previous)
        values.append(score.step(None, base + distance / np.sqrt(a * (h - k))))
    assert values[0] < 0.02
    assert np.all(np.diff(values) > 0)
    assert values[-1] > 20 * values[0]


def test_first_decision_of_every_episode_scores_zero_offline():
    g = np.random.default_rng(3)
    samples = g.normal(size=(9, 8, 6, 2)) + np.arange(9)[:, None, None, None]
    score = _fitted(samples, n_action_steps=2)
    out = score.score_offline(None, samples, [4, 4, 9])  # an empty episode in the middle
    assert out[0] == 0 and out[4] == 0
    assert np.all(out[[1, 2, 3, 5, 6, 7, 8]] > 0.1)
