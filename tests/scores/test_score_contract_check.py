"""fiper.scores.contract.check_score: a score of your own is checked for what fiper's scores are tested
for, and each way of breaking the contract is named."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fiper.scores import SCORES, ScoreBase
from fiper.scores.contract import ScoreContractError, check_score
from score_helpers import TINY, Decisions


class Jump(ScoreBase):
    """Distance between consecutive decisions' mean first actions; ``mode`` breaks it."""

    name = "test_contract_jump"
    needs = frozenset({"samples"})
    dtype = torch.float64
    backend = "numpy"

    def __init__(self, mode: str = "ok"):
        super().__init__(mode=mode)
        self._previous = None
        self.scale = None
        self.shift = 0.0  # fitted, but with mode 'unsaved' left out of _tensors

    def _fit(self, embeddings, samples, decision_ends, seed):
        noise = np.random.default_rng().normal() if self._config["mode"] == "unseeded" else 0.0
        self.scale = np.asarray([np.asarray(samples).std() + noise])
        self.shift = 1.0 if self._config["mode"] == "unsaved" else 0.0

    def _first(self, samples):
        return np.asarray(samples)[:, :, 0].mean(axis=1)

    def _score(self, embeddings, samples):
        raise NotImplementedError  # history: _step and score_offline

    def reset(self):
        self._previous = None

    def _step(self, embedding, samples):
        current = self._first(samples)
        out = 0.0 if self._previous is None else float(np.linalg.norm(current - self._previous) / self.scale[0]) + self.shift
        self._previous = current
        return out

    def score_offline(self, embeddings=None, samples=None, decision_ends=None):
        first = self._first(samples)
        out = np.r_[0.0, np.linalg.norm(np.diff(first, axis=0), axis=1) / self.scale[0] + self.shift]
        if self._config["mode"] != "no_restart":
            out[np.r_[0, np.asarray(decision_ends)[:-1]]] = 0.0
        return out

    def _tensors(self):
        return {"scale": torch.as_tensor(self.scale)}

    def _load_tensors(self, tensors):
        self.scale = tensors["scale"].numpy()


@pytest.fixture
def jump():
    SCORES[Jump.name] = Jump
    yield Jump.name
    SCORES.pop(Jump.name, None)


@pytest.mark.parametrize("name", ["ace", "stac", "knn"])
def test_fiper_scores_pass(name):
    data = Decisions(seed=0).fit_data()
    assert check_score(name, data, params=TINY[name]).shape == (int(data.decision_ends[-1]),)


@pytest.mark.parametrize("mode, match", [
    ("ok", None),
    ("no_restart", r"step gives 0.0 but score_offline .* at decision 5; online and offline must agree"),
    ("unseeded", r"a second fit with seed 0 scores decision 1 .*draw every random number of the fit from its seed"),
    ("unsaved", r"after state\(\) / from_state decision 1 scores .*save every fitted value in _tensors\(\)"),
])
def test_each_broken_property_is_named(jump, mode, match):
    data = Decisions(seed=0).fit_data()
    if match is None:
        check_score(jump, data, params={"mode": mode})
    else:
        with pytest.raises(ScoreContractError, match=match):
            check_score(jump, data, params={"mode": mode})
