"""FailureMonitor.calibrate on a user's own arrays: what the 'or' rule guarantees, and raw scores that miss a score."""

from __future__ import annotations

import numpy as np
import pytest

from fiper.monitor import FailureMonitor, PolicyIdentity
from fiper.scores.base import ScoreFitData
from fiper.scores.registry import make_score

IDENTITY = PolicyIdentity(embedding_dim=4, num_samples=3, horizon=2, action_dim=2, n_action_steps=1, name="toy")


def _monitor(rule: str) -> FailureMonitor:
    """Two fitted scores; calibration below reads only the raw arrays handed to it."""
    ends = np.array([5, 10])
    data = ScoreFitData(None, None, ends)
    scores = {"a": make_score("elapsed").fit(data), "b": make_score("elapsed").fit(data)}
    return FailureMonitor(scores, IDENTITY, windows={"a": 1, "b": 1}, rule=rule)


def _rollouts(rng: np.random.Generator, n: int, length: int = 6) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Two independent continuous scores per decision, every rollout ``length`` decisions."""
    return {k: rng.normal(size=n * length) for k in ("a", "b")}, np.arange(1, n + 1) * length


def _far(monitor: FailureMonitor, rng: np.random.Generator, **calibration) -> float:
    """False-alarm rate on fresh exchangeable rollouts, pooled over 40 calibration sets of 60."""
    alarms = []
    for _ in range(40):
        monitor.calibrate(*_rollouts(rng, 60), delta=0.1, **calibration)
        raw, ends = _rollouts(rng, 200)
        alarms.append(monitor.alarms_offline(raw, ends).first_alarm >= 0)
    return float(np.mean(alarms))


def test_or_of_separately_calibrated_scores_warns_that_it_guarantees_k_delta():
    """Each score at delta: the OR alarms on about 2 delta of successes, and calibrate says so; joint keeps delta."""
    rng = np.random.default_rng(0)
    monitor = _monitor("or")
    with pytest.warns(UserWarning, match=r"2 x delta = 0\.2, not delta; calibrate with joint=True"):
        separate = _far(monitor, rng, threshold_type="constant")
    assert 0.16 < separate < 0.21  # 1 - 0.9^2 = 0.19 for independent scores; SE 0.003
    joint = _far(monitor, rng, threshold_type="constant", joint=True)
    assert abs(joint - 0.1) < 0.015


@pytest.mark.parametrize("rule, joint", [("and", False), ("or", True)])
def test_rules_that_keep_delta_calibrate_without_a_warning(rule, joint, recwarn):
    _monitor(rule).calibrate(*_rollouts(np.random.default_rng(1), 60), delta=0.1, joint=joint)
    assert not [w for w in recwarn if "delta" in str(w.message)]


def test_raw_scores_missing_a_score_are_refused_naming_it():
    raw, ends = _rollouts(np.random.default_rng(2), 30)
    with pytest.raises(ValueError, match=r"raw holds no scores for \['b'\] \(it has \['a'\]\).*score_offline"):
        _monitor("and").calibrate({"a": raw["a"]}, ends, delta=0.1)


def test_no_calibration_rollouts_are_refused_naming_the_minimum():
    from calibration import InsufficientCalibrationError

    with pytest.raises(InsufficientCalibrationError, match=r"no calibration rollouts.*at least 19 successful in-distribution"):
        _monitor("and").calibrate({"a": np.zeros(0), "b": np.zeros(0)}, np.zeros(0, dtype=np.int64), delta=0.05)
