"""Contract tests run against every registered score: online == offline, state round trip, bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from score_helpers import TINY
from safetensors.torch import load_file, save_file

from fiper.scores import SCORES, FailureScore, ScoreFitData, ScoreNotFittedError, make_score, score_from_state

NAMES = sorted(n for n in SCORES if "observation" not in SCORES[n].needs)  # observation readers: tests/scores/test_obs_novelty.py


def test_tiny_configs_cover_every_registered_score():
    """Every score of fiper's own (other tests register scores of their own in this process too)."""
    assert set(TINY) == {name for name, cls in SCORES.items() if cls.__module__.startswith("fiper.scores.")}


@pytest.mark.parametrize("name", NAMES)
def test_satisfies_protocol_and_declares_needs(name, fitted_scores):
    score = fitted_scores[name]
    assert isinstance(score, FailureScore)
    assert score.name == name
    assert score.needs <= {"embedding", "samples"}
    assert (score.embedding_dim is not None) == ("embedding" in score.needs)
    assert (score.sample_shape is not None) == ("samples" in score.needs)


def _online(score, decisions) -> np.ndarray:
    out, start = [], 0
    for end in decisions.decision_ends:
        score.reset()
        for i in range(start, end):
            out.append(score.step(torch.from_numpy(decisions.embeddings[i]), torch.from_numpy(decisions.samples[i])))
        start = end
    return np.array(out)


@pytest.mark.parametrize("name", NAMES)
def test_online_matches_offline_over_several_episodes(name, fitted_scores, decisions):
    score = fitted_scores[name]
    offline = score.score_offline(decisions.embeddings, decisions.samples, decisions.decision_ends)
    online = _online(score, decisions)
    assert offline.shape == (len(decisions.embeddings),) and offline.dtype == np.float64
    assert np.all(np.isfinite(offline))
    np.testing.assert_allclose(online, offline, rtol=1e-5, atol=1e-5)
    assert np.ptp(offline) > 0  # the comparison is not vacuous


@pytest.mark.parametrize("name", NAMES)
def test_offline_chunking_does_not_change_scores(name, fitted_scores, decisions):
    score = fitted_scores[name]
    whole = score.score_offline(decisions.embeddings, decisions.samples, decisions.decision_ends)
    score.chunk_elements = 1  # one or two decisions per chunk
    try:
        chunked = score.score_offline(decisions.embeddings, decisions.samples, decisions.decision_ends)
    finally:
        del score.chunk_elements
    np.testing.assert_allclose(chunked, whole, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_state_round_trip_through_safetensors_and_json(name, fitted_scores, decisions, tmp_path):
    score = fitted_scores[name]
    tensors, config = score.state()
    save_file(tensors, tmp_path / "score.safetensors")
    (tmp_path / "score.json").write_text(json.dumps(config))
    loaded = score_from_state(load_file(tmp_path / "score.safetensors"), json.loads((tmp_path / "score.json").read_text()))
    assert type(loaded) is type(score) and loaded.config == score.config
    args = (decisions.embeddings, decisions.samples, decisions.decision_ends)
    np.testing.assert_array_equal(loaded.score_offline(*args), score.score_offline(*args))
    np.testing.assert_array_equal(_online(loaded, decisions), _online(score, decisions))


@pytest.mark.parametrize("name", NAMES)
def test_refitting_with_the_same_seed_is_deterministic(name, decisions):
    data = ScoreFitData(decisions.embeddings, decisions.samples, decisions.decision_ends, seed=3)
    a, b = make_score(name, **TINY[name]).fit(data), make_score(name, **TINY[name]).fit(data)
    args = (decisions.embeddings, decisions.samples, decisions.decision_ends)
    np.testing.assert_array_equal(a.score_offline(*args), b.score_offline(*args))


@pytest.mark.parametrize("name", NAMES)
def test_wrong_shapes_raise_naming_both_shapes(name, fitted_scores, decisions):
    score = fitted_scores[name]
    emb, smp = torch.from_numpy(decisions.embeddings[0]), torch.from_numpy(decisions.samples[0])
    if "embedding" in score.needs:
        with pytest.raises(ValueError, match=r"\(9,\).*\(8,\)"):
            score.step(torch.zeros(9), smp)
        with pytest.raises(ValueError, match=r"\(1, 8\).*\(8,\)"):
            score.step(emb[None], smp)
    if "samples" in score.needs:
        with pytest.raises(ValueError, match=r"\(7, 5, 3\).*\(6, 5, 3\)"):
            score.step(emb, torch.zeros(7, 5, 3))
        with pytest.raises(ValueError, match=r"\(21, 6, 5, 2\).*\(N, 6, 5, 3\)"):
            score.score_offline(decisions.embeddings, decisions.samples[..., :2], decisions.decision_ends)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_inputs_raise(name, bad, fitted_scores, decisions):
    score = fitted_scores[name]
    emb, smp = decisions.embeddings.copy(), decisions.samples.copy()
    if not score.needs:  # inputs it does not read cannot spoil its scores
        emb[3, 1], smp[3, 0, 1, 0] = bad, bad
        clean = score.score_offline(None, None, decisions.decision_ends)
        np.testing.assert_array_equal(score.score_offline(emb, smp, decisions.decision_ends), clean)
        assert np.all(np.isfinite(clean))
        return
    if "embedding" in score.needs:
        emb[3, 1] = bad
    else:
        smp[3, 0, 1, 0] = bad
    with pytest.raises(ValueError, match="non-finite"):
        score.step(emb[3], smp[3])
    with pytest.raises(ValueError, match="non-finite"):
        score.score_offline(emb, smp, decisions.decision_ends)


@pytest.mark.parametrize("name", NAMES)
def test_unread_inputs_may_be_left_out(name, fitted_scores, decisions):
    score = fitted_scores[name]
    emb = decisions.embeddings if "embedding" in score.needs else None
    smp = decisions.samples if "samples" in score.needs else None
    full = score.score_offline(decisions.embeddings, decisions.samples, decisions.decision_ends)
    np.testing.assert_array_equal(score.score_offline(emb, smp, decisions.decision_ends), full)
    if not score.needs:
        return
    missing = "embedding" if "embedding" in score.needs else "samples"
    with pytest.raises(ValueError, match=missing):
        score.score_offline(None if missing == "embedding" else emb, None if missing == "samples" else smp, decisions.decision_ends)


@pytest.mark.parametrize("name", NAMES)
def test_unfitted_score_refuses_to_score(name, decisions):
    score = make_score(name, **TINY[name])
    with pytest.raises(ScoreNotFittedError, match="fit"):
        score.step(decisions.embeddings[0], decisions.samples[0])
    with pytest.raises(ScoreNotFittedError):
        score.state()


def test_decision_ends_must_cover_the_decisions(fitted_scores, decisions):
    score = fitted_scores["ace"]
    with pytest.raises(ValueError, match="ends at 20 but 21"):
        score.score_offline(None, decisions.samples, decisions.decision_ends - np.r_[0, 0, 0, 1])
    with pytest.raises(ValueError, match="non-decreasing"):
        score.score_offline(None, decisions.samples, np.array([5, 3, 21]))


def test_registry_names_the_known_scores():
    with pytest.raises(KeyError, match="known scores: ace, dynamics_residual, elapsed, knn, logpzo"):
        make_score("rnd_o")
    with pytest.raises(ValueError, match="cannot be loaded"):
        SCORES["ace"].from_state({}, {"name": "stac", "params": {}})


@pytest.mark.parametrize(
    "name, kwargs, match",
    [
        ("rnd_oe", dict(predictor_widths=[8], target_widths=[8, 8]), "at least as deep"),
        ("rnd_oe", dict(train=dict(lr=-1)), "lr > 0"),
        ("rnd_oe", dict(train=dict(learning_rate=1e-3)), "unknown training settings"),
        ("ace", dict(kappa=0), "kappa"),
        ("ace", dict(dims=[0, 0]), "distinct"),
        ("stac", dict(n_action_steps=0), "n_action_steps"),
        ("logpzo", dict(activation="swish"), "unknown activation"),
        ("pca_kmeans", dict(n_clusters=0), ">= 1"),
        ("mahalanobis", dict(shrinkage=1.5), r"\[0, 1\]"),
        ("knn", dict(k=0), "k must be"),
    ],
)
def test_constructors_validate_their_config(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_score(name, **kwargs)


def test_fit_data_validates_shapes():
    with pytest.raises(ValueError, match="embeddings hold 4 decisions but samples hold 5"):
        ScoreFitData(np.zeros((4, 3)), np.zeros((5, 2, 2, 2)), [4])
    with pytest.raises(ValueError, match=r"\(N, B, H, A\)"):
        ScoreFitData(None, np.zeros((5, 2, 2)), [5])
    with pytest.raises(ValueError, match="reads sample batches"):
        make_score("ace").fit(ScoreFitData(np.zeros((4, 3)), None, [4]))


def test_register_score_adds_a_plugin_and_refuses_taken_names(decisions):
    from fiper.scores import ScoreBase, register_score

    class EmbeddingNorm(ScoreBase):
        """A user score: the embedding's norm."""

        name = "test_embedding_norm"
        needs = frozenset({"embedding"})

        def _fit(self, embeddings, samples, decision_ends, seed):
            return None

        def _score(self, embeddings, samples):
            return embeddings.norm(dim=1)

    try:
        register_score(EmbeddingNorm)
        score = make_score("test_embedding_norm").fit(decisions.fit_data())
        np.testing.assert_allclose(score.step(decisions.embeddings[0], None), np.linalg.norm(decisions.embeddings[0]), rtol=1e-6)
        clash = type("Clash", (EmbeddingNorm,), {"name": "ace"})
        with pytest.raises(ValueError, match="taken"):
            register_score(clash)
        with pytest.raises(TypeError, match="lacks"):
            register_score(type("NotAScore", (), {"name": "x"}))
    finally:
        SCORES.pop("test_embedding_norm", None)


def test_elapsed_counts_decisions_per_episode_and_reads_nothing(decisions):
    score = make_score("elapsed").fit(ScoreFitData(None, None, [4, 9]))
    assert score.needs == frozenset() and score.embedding_dim is None and score.sample_shape is None
    np.testing.assert_array_equal(score.score_offline(None, None, decisions.decision_ends),
                                  [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 5, 6, 0, 1, 2, 0, 1, 2, 3, 4, 5])
    np.testing.assert_array_equal(score.score_offline(None, None, np.array([0, 2, 2, 3])), [0, 1, 0])  # empty episodes
    assert [score.step() for _ in range(3)] == [0.0, 1.0, 2.0]
    score.reset()
    assert score.step(decisions.embeddings[0], decisions.samples[0]) == 0.0
    with pytest.raises(ValueError, match="pass decision_ends"):
        score.score_offline(None, None, None)
    with pytest.raises(ValueError, match="holds no decisions"):
        ScoreFitData(None, None, [0])
