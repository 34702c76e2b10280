"""A score of one's own with history: it overrides _step and score_offline and needs no _score, and ScoreBase
checks the inputs of its score_offline as it checks a built-in score's, once per call."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import fiper.scores.base as base
from fiper.scores import SCORES, ScoreBase, make_score, register_score
from fiper.scores.contract import check_score
from score_helpers import TINY, Decisions


class RunningNorm(ScoreBase):
    """The mean embedding norm so far in the episode, in units of the fit's mean norm."""

    name = "test_running_norm"
    needs = frozenset({"embedding"})
    dtype = torch.float64
    backend = "numpy"

    def __init__(self):
        super().__init__()
        self.unit, self.offline_calls = None, 0
        self.reset()

    def _fit(self, embeddings, samples, decision_ends, seed):
        self.unit = np.linalg.norm(np.asarray(embeddings, np.float64), axis=1).mean().reshape(1)

    def reset(self):
        self._sum, self._count = 0.0, 0

    def _step(self, embedding, samples):
        self._sum, self._count = self._sum + float(np.linalg.norm(np.asarray(embedding[0], np.float64))), self._count + 1
        return self._sum / self._count / float(self.unit[0])

    def score_offline(self, embeddings=None, samples=None, decision_ends=None):
        self.offline_calls += 1
        norms = np.linalg.norm(np.asarray(embeddings, np.float64), axis=1)
        out, start = np.empty(len(norms)), 0
        for end in np.asarray(decision_ends):
            out[start:end] = np.cumsum(norms[start:end]) / np.arange(1, end - start + 1)
            start = end
        return out / float(self.unit[0])

    def _tensors(self):
        return {"unit": torch.as_tensor(self.unit)}

    def _load_tensors(self, tensors):
        (unit,) = self._take(tensors, "unit")
        self.unit = unit.cpu().numpy()


class Nearest(ScoreBase):
    """A user's score that overrides score_offline and reuses ScoreBase's (e.g. to post-process it)."""

    name = "test_nearest_twice"
    needs = frozenset({"embedding"})
    backend = "numpy"

    def _fit(self, embeddings, samples, decision_ends, seed):
        self.mean = np.asarray(embeddings).mean(0)

    def _score(self, embeddings, samples):
        return np.linalg.norm(embeddings - self.mean, axis=1)

    def score_offline(self, embeddings=None, samples=None, decision_ends=None):
        return 2.0 * super().score_offline(embeddings, samples, decision_ends)


def test_a_score_with_history_needs_no_score_hook_and_keeps_the_contract():
    data = Decisions(seed=0)  # episodes of 5, 7, 3, 6 decisions
    register_score(RunningNorm)
    try:
        offline = check_score("test_running_norm", data.fit_data())
    finally:
        SCORES.pop("test_running_norm", None)
    norms = np.linalg.norm(data.embeddings.astype(np.float64), axis=1)
    unit = norms.mean()
    np.testing.assert_allclose(offline[:5], np.cumsum(norms[:5]) / np.arange(1, 6) / unit, rtol=1e-12)
    assert offline[5] == pytest.approx(norms[5] / unit, rel=1e-12)  # the second episode starts afresh


def test_a_score_that_calls_score_base_paths_without_a_score_hook_is_refused_naming_them():
    class OnlineOnly(ScoreBase):  # wrote _step for a stateless score, so ScoreBase's score_offline has nothing to call
        name, needs = "test_online_only", frozenset({"embedding"})

        def _fit(self, embeddings, samples, decision_ends, seed):
            return None

        def _step(self, embedding, samples):
            return float(embedding.sum())

    with pytest.raises(TypeError, match=r"OnlineOnly does not implement _score\(embeddings, samples\) -> \(n,\) scores, which ScoreBase's "
                                        r"score_offline call: implement _score, or override _step and score_offline"):
        OnlineOnly()
    neither = type("Neither", (OnlineOnly,), {"_step": ScoreBase._step, "score_offline": ScoreBase.score_offline})
    with pytest.raises(TypeError, match=r"ScoreBase's _step and score_offline call"):
        neither()


def _error(score, *args) -> str:
    with pytest.raises(ValueError) as err:
        score.score_offline(*args)
    return str(err.value).replace(score.name, "<score>")


@pytest.mark.parametrize("case", ["nan", "shape", "ends"])
def test_an_overriding_score_offline_gets_the_built_in_input_checks(case):
    data = Decisions(seed=0)
    fit = data.fit_data()
    mine, builtin = RunningNorm().fit(fit), make_score("knn", **TINY["knn"]).fit(fit)
    emb, ends = data.embeddings.copy(), data.decision_ends
    if case == "nan":
        emb[4, 2] = np.nan
    elif case == "shape":
        emb = emb[:, :7]
    else:
        ends = ends - np.r_[0, 0, 0, 1]  # the last episode one decision short
    theirs = _error(builtin, emb, None, ends)
    assert _error(mine, emb, None, ends) == theirs and mine.offline_calls == 0
    expected = {"nan": "embedding of shape (21, 8) contains 1 non-finite values", "shape": "has shape (21, 7) but the score expects (N, 8)",
                "ends": "decision_ends ends at 20 but 21 decisions were given"}[case]
    assert expected in theirs
    assert mine.score_offline(data.embeddings, None, data.decision_ends).shape == (21,) and mine.offline_calls == 1


def test_inputs_are_checked_once_per_call(monkeypatch):
    data = Decisions(seed=0)
    calls = []
    check = base.check_finite
    monkeypatch.setattr(base, "check_finite", lambda *a: calls.append(a[1]) or check(*a))
    nearest = Nearest().fit(data.fit_data())
    calls.clear()
    out = nearest.score_offline(data.embeddings, None, data.decision_ends)
    np.testing.assert_allclose(out, 2 * np.linalg.norm(data.embeddings - data.embeddings.mean(0), axis=1), rtol=1e-6)
    assert calls == ["embedding"]  # checked before the override, not again in ScoreBase's score_offline it calls
    for name in ("projected_duration", "stac"):  # fiper's overriding scores check their inputs themselves
        score = make_score(name, **TINY[name]).fit(data.fit_data())
        calls.clear()
        score.score_offline(data.embeddings, data.samples, data.decision_ends)
        assert calls == [next(iter(score.needs))]


class ChunkSpread(ScoreBase):
    """Spread of the batch at one step of the chunk, kept as ``self.step``: it hides ScoreBase.step."""

    name = "test_chunk_spread_shadowing"
    needs = frozenset({"samples"})
    dtype = torch.float64
    backend = "numpy"

    def __init__(self, step: int = 0):
        super().__init__(step=step)
        self.step = int(step)

    def _fit(self, embeddings, samples, decision_ends, seed):
        return None

    def _score(self, embeddings, samples):
        return samples[:, :, self.step, :].std(axis=1).mean(axis=1)


def test_an_attribute_hiding_a_score_method_is_refused_at_fit_and_load_naming_it():
    """Offline scores would work while check_score's step would call the int: refused before either, naming the rename."""
    with pytest.raises(TypeError, match=r"ChunkSpread sets the attribute\(s\) \['step'\].*step\(\).*self\._step"):
        ChunkSpread(step=1).fit(Decisions(seed=0).fit_data())
    with pytest.raises(TypeError, match=r"\['step'\]"):
        ChunkSpread.from_state({}, {"name": ChunkSpread.name, "params": {"step": 1}})
