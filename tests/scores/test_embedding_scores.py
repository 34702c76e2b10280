"""The learned and distance scores rank a shifted set above in-distribution decisions."""

from __future__ import annotations

import numpy as np
import pytest

from fiper.scores import ScoreFitData, make_score

ENDS = np.arange(1, 11) * 100  # 10 episodes of 100 decisions

EMBEDDING_SCORES = {
    "logpzo": dict(widths=[64, 64], train=dict(lr=1e-3, max_epochs=20, batch_size=64)),
    "pca_kmeans": dict(n_components=10, n_clusters=32),
    "mahalanobis": dict(),
    "knn": dict(k=5),
}


def test_rnd_oe_separates_a_shifted_embedding_distribution(manifold, auroc):
    train, held_out, shifted = manifold.embeddings(1000), manifold.embeddings(300), manifold.embeddings(300, shift=2.0)
    score = make_score(
        "rnd_oe", target_widths=[32, 32], predictor_widths=[64, 64, 64], out_dim=16,
        train=dict(lr=3e-3, max_epochs=20, batch_size=64),
    ).fit(ScoreFitData(train, None, ENDS, seed=0))
    s_train = score.score_offline(train, None, ENDS)
    s_held, s_shift = score.score_offline(held_out, None, [300]), score.score_offline(shifted, None, [300])
    assert auroc(s_held, s_shift) >= 0.95
    assert np.median(s_held) < 0.6 * np.median(s_shift)
    assert np.median(s_held) < 1.25 * np.median(s_train)  # held-out ID scores like the training set
    # training lowered the prediction error it was trained on, and early stopping kept the best epoch
    assert score.fit_result.val_loss[0] > 1.5 * min(score.fit_result.val_loss)
    assert score.fit_result.best_val == min(score.fit_result.val_loss)


@pytest.mark.parametrize("name", sorted(EMBEDDING_SCORES))
def test_embedding_scores_rank_a_shifted_set_higher(name, manifold, auroc):
    train, held_out, shifted = manifold.embeddings(1000), manifold.embeddings(300), manifold.embeddings(300, shift=2.0)
    score = make_score(name, **EMBEDDING_SCORES[name]).fit(ScoreFitData(train, None, ENDS, seed=0))
    s_held, s_shift = score.score_offline(held_out, None, [300]), score.score_offline(shifted, None, [300])
    assert auroc(s_held, s_shift) > 0.9


def test_rnd_a_ranks_actions_inconsistent_with_the_embedding_higher(manifold, auroc):
    train = manifold.embeddings(600)
    ends = np.arange(1, 7) * 100
    held = manifold.embeddings(200)
    score = make_score(
        "rnd_a", target_widths=[32, 32], predictor_widths=[64, 64, 64], out_dim=16, samples_per_decision=4,
        train=dict(lr=3e-3, max_epochs=15, batch_size=128),
    ).fit(ScoreFitData(train, manifold.samples(train), ends, seed=0))
    s_held = score.score_offline(held, manifold.samples(held), [200])
    s_shift = score.score_offline(held, manifold.samples(held, shift=1.5), [200])
    assert auroc(s_held, s_shift) > 0.9


def test_mahalanobis_shrinkage_is_estimated_or_fixed(manifold):
    train = manifold.embeddings(40)[:, :12]  # N barely above D: the sample covariance is poorly conditioned
    auto = make_score("mahalanobis").fit(ScoreFitData(train, None, [40]))
    fixed = make_score("mahalanobis", shrinkage=0.0).fit(ScoreFitData(train, None, [40]))
    assert 0.0 < auto.shrinkage_used < 1.0 and fixed.shrinkage_used == 0.0
    # with no shrinkage the score reduces to the plain Mahalanobis distance of the standardised data
    x = (train - train.mean(0)) / train.std(0)
    cov = x.T @ x / len(x)
    expected = np.sqrt(np.einsum("nd,de,ne->n", x, np.linalg.inv(cov), x))
    np.testing.assert_allclose(fixed.score_offline(train, None, [40]), expected, rtol=1e-4)


def test_knn_is_the_mean_distance_to_the_k_nearest_references():
    g = np.random.default_rng(0)
    ref = g.normal(size=(50, 3))
    score = make_score("knn", k=4, standardize=False).fit(ScoreFitData(ref, None, [50]))
    query = g.normal(size=(7, 3))
    d = np.linalg.norm(query[:, None] - ref[None], axis=-1)
    np.testing.assert_allclose(score.score_offline(query, None, [7]), np.sort(d, axis=1)[:, :4].mean(1), rtol=1e-10)
    capped = make_score("knn", k=4, max_reference=10).fit(ScoreFitData(ref, None, [50]))
    assert capped.reference.shape == (10, 3)


def test_pca_kmeans_clips_components_and_centres_to_the_data():
    g = np.random.default_rng(1)
    x = g.normal(size=(20, 6))
    score = make_score("pca_kmeans").fit(ScoreFitData(x, None, [20]))
    assert score.components.shape == (6, 6) and score.centres.shape == (20, 6)
    # 20 centres for 20 points: every training point is its own centre, at distance 0
    np.testing.assert_allclose(score.score_offline(x, None, [20]), 0.0, atol=1e-6)
    assert np.all(score.score_offline(x + 0.5, None, [20]) > 0.1)
