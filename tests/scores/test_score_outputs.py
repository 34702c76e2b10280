"""A score's output is one finite number per decision: a wrong shape or a NaN is refused naming the
score, offline, online, at calibration and in the evaluation, instead of broadcasting or passing on; a
bug inside a score keeps its own error and traceback, with a note naming the score."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks.synthetic_stores import SyntheticTask, write_synthetic_store
from fiper.evaluation.rollouts import load_rollouts
from fiper.evaluation.scoring import fit_and_score, resolve_specs
from fiper.monitor import FailureMonitor
from fiper.monitor.identity import PolicyIdentity
from fiper.scores import SCORES, ScoreBase, ScoreFitData
from score_helpers import Decisions


class Distance(ScoreBase):
    """The embedding's distance to the fit mean; ``mode`` breaks it the way a first attempt does."""

    name = "test_output_distance"
    needs = frozenset({"embedding"})
    dtype = torch.float64
    backend = "numpy"

    def __init__(self, mode: str = "ok"):
        super().__init__(mode=mode)

    def _fit(self, embeddings, samples, decision_ends, seed):
        if self._config["mode"] == "fit_bug":
            raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")
        self.mean = embeddings.mean(0)

    def _score(self, embeddings, samples):
        d = np.linalg.norm(embeddings - self.mean, axis=1)
        mode = self._config["mode"]
        if mode == "mean":  # one number for the whole batch
            return np.atleast_1d(d.mean())
        if mode == "column":  # (n, 1)
            return d[:, None]
        if mode == "score_bug":
            raise KeyError("missing")
        if mode == "nan":  # NaN on some decisions
            return np.where(embeddings[:, 0] > self.mean[0], np.nan, d)
        return d


@pytest.fixture
def registered():
    SCORES[Distance.name] = Distance
    yield Distance
    SCORES.pop(Distance.name, None)


def fitted(mode: str, data: Decisions) -> Distance:
    return Distance(mode=mode).fit(ScoreFitData(data.embeddings, None, data.decision_ends))


@pytest.mark.parametrize("mode, shape", [("mean", r"\(1,\)"), ("column", r"\(\d+, 1\)")])
def test_wrong_output_shape_is_refused_offline_and_online(mode, shape):
    data = Decisions(seed=0)
    score = fitted(mode, data)
    with pytest.raises(ValueError, match=rf"test_output_distance: the score returned shape {shape} for \d+ decisions; it must return one number"):
        score.score_offline(data.embeddings, None, data.decision_ends)
    if mode == "column":
        with pytest.raises(ValueError, match=r"returned shape \(1, 1\) for 1 decisions"):
            score.step(data.embeddings[0], None)


def monitor_of(score: ScoreBase, data: Decisions) -> FailureMonitor:
    identity = PolicyIdentity(embedding_dim=data.embeddings.shape[1], num_samples=6, horizon=5, action_dim=3, n_action_steps=2)
    return FailureMonitor({"mine": score}, identity, windows={"mine": 2}, rule="single")


def test_monitor_names_the_score_whose_scores_are_nan_at_calibration_and_offline():
    data = Decisions(seed=0, lengths=(6,) * 12)
    monitor = monitor_of(fitted("nan", data), data)
    raw = monitor.score_offline(data.embeddings, None, data.decision_ends)
    with pytest.raises(ValueError, match=r"calibration scores of 'mine' must be finite inside each rollout: rollout \d+ has nan"):
        monitor.calibrate(raw, data.decision_ends, delta=0.1)
    monitor.calibrate({"mine": np.nan_to_num(raw["mine"])}, data.decision_ends, delta=0.1)
    with pytest.raises(ValueError, match=r"scores of 'mine' must be finite inside each rollout"):
        monitor.alarms_offline(raw, data.decision_ends)


def test_monitor_step_turns_an_output_of_two_numbers_into_a_failsafe_alarm():
    data = Decisions(seed=0, lengths=(6,) * 12)
    score = fitted("ok", data)
    monitor = monitor_of(score, data)
    monitor.calibrate(monitor.score_offline(data.embeddings, None, data.decision_ends), data.decision_ends, delta=0.1)
    score.step_checked = lambda *a, **k: np.array([1.0, 2.0])
    monitor.reset()
    verdict = monitor.step(data.embeddings[0], data.samples[0])
    assert verdict.alarm and verdict.failsafe and "returned shape (2,)" in verdict.reason


def test_evaluation_names_a_score_whose_offline_output_has_the_wrong_length(registered, tmp_path):
    task = SyntheticTask(embedding_dim=8, num_samples=4, horizon=4, action_dim=2, n_action_steps=2)
    write_synthetic_store(tmp_path / "r.zarr", task, seed=0, n_success_id=8, n_success_ood=0, n_fail_id=2, n_fail_ood=0)
    ro = load_rollouts(str(tmp_path / "r.zarr"))["synthetic"]
    registered.score_offline = lambda self, e, s, ends: np.zeros(1)  # a history score's own score_offline, wrong length
    try:
        specs = resolve_specs({"mine": {"score": registered.name}}, ["mine"], ro)
        with pytest.raises(ValueError, match=r"scoring 'mine' .*mine: the score returned shape \(1,\) for \d+ decisions"):
            fit_and_score(ro, np.arange(4), specs, seed=0, device="cpu")
    finally:
        del registered.score_offline


def test_a_bug_inside_a_score_keeps_its_error_and_names_the_score(registered, tmp_path):
    task = SyntheticTask(embedding_dim=8, num_samples=4, horizon=4, action_dim=2, n_action_steps=2)
    write_synthetic_store(tmp_path / "r.zarr", task, seed=0, n_success_id=8, n_success_ood=0, n_fail_id=2, n_fail_ood=0)
    ro = load_rollouts(str(tmp_path / "r.zarr"))["synthetic"]
    for mode, error, note in (("fit_bug", RuntimeError, "while fitting score 'mine'"), ("score_bug", KeyError, "while scoring 'mine' on task")):
        specs = resolve_specs({"mine": {"score": registered.name, "mode": mode}}, ["mine"], ro)
        with pytest.raises(error) as caught:
            fit_and_score(ro, np.arange(4), specs, seed=0, device="cpu")
        assert any(n.startswith(note) for n in caught.value.__notes__)
    data = Decisions(seed=0)
    spec = {"scores": {"mine": {"score": registered.name, "mode": "fit_bug"}}}
    with pytest.raises(RuntimeError) as caught:
        FailureMonitor.from_spec(spec, ScoreFitData(data.embeddings, None, data.decision_ends), monitor_of(fitted("ok", data), data).identity)
    assert caught.value.__notes__ == ["while fitting score 'mine' (test_score_outputs:Distance)"]
