"""Joint calibration of an AND / OR alarm: the shared height keeps the guarantee and spends delta."""

from __future__ import annotations

import numpy as np
import pytest

from calibration import InsufficientCalibrationError, fit_joint, fit_threshold, load_threshold, save_threshold
from calibration.rollouts import step_mask
from synthetic_rollouts import ar1_scores, windowed_batch

SPLITS, NUM_CAL, NUM_TEST, STEPS, WINDOW = 1000, 60, 10, 40, 5


@pytest.fixture(scope="module")
def study():
    """Two dependent windowed scores for S splits of M calibration + K test successful rollouts."""
    rng = np.random.default_rng(99)
    s1, s2, lengths = ar1_scores(rng, (SPLITS, NUM_CAL + NUM_TEST), STEPS)
    eta1, eta2 = windowed_batch(s1, lengths, WINDOW), windowed_batch(s2, lengths, WINDOW)
    return eta1, eta2, lengths, step_mask(lengths, STEPS)


def _alarms(thresholds, eta1, eta2, mask, rule):
    g1, g2 = thresholds["a"].values(STEPS), thresholds["b"].values(STEPS)
    with np.errstate(invalid="ignore"):
        e1, e2 = eta1 > g1, eta2 > g2
    both = (e1 & e2) if rule == "and" else (e1 | e2)
    return (both & mask).any(axis=-1)


def _rates(study, kind, delta, rule, joint):
    """Per split: fraction of the K test rollouts with any false alarm."""
    eta1, eta2, lengths, mask = study
    cal, test = slice(0, NUM_CAL), slice(NUM_CAL, None)
    rates = np.empty(SPLITS)
    for s in range(SPLITS):
        data = {"a": eta1[s, cal], "b": eta2[s, cal]}
        if joint:
            th = fit_joint(kind, data, lengths[s, cal], delta, rule=rule, seed=s)
        else:
            opts = {"seed": s} if kind == "band" else {}
            th = {n: fit_threshold(kind, v, lengths[s, cal], delta, **opts) for n, v in data.items()}
        rates[s] = _alarms(th, eta1[s, test], eta2[s, test], mask[s, test], rule).mean()
    return rates.mean(), rates.std(ddof=1) / np.sqrt(SPLITS)


@pytest.mark.parametrize("delta", [0.05, 0.1])
@pytest.mark.parametrize("kind", ["constant", "band"])
def test_joint_and_is_valid_and_spends_delta(study, kind, delta):
    rate, se = _rates(study, kind, delta, "and", joint=True)
    assert rate <= delta + 3 * se, f"joint {kind}: false-alarm rate {rate:.4f} > delta {delta} + 3 SE ({se:.4f})"
    n2 = NUM_CAL - NUM_CAL // 2
    assert rate >= delta - 1 / (n2 + 1) - 3 * se, f"joint {kind}: rate {rate:.4f} is far below delta {delta}"
    per_score, _ = _rates(study, kind, delta, "and", joint=False)
    assert per_score < rate, f"per-score AND ({per_score:.4f}) should spend less of delta than the joint AND ({rate:.4f})"


def test_joint_or_is_valid(study):
    rate, se = _rates(study, "constant", 0.1, "or", joint=True)
    assert rate <= 0.1 + 3 * se


def test_shared_height_is_the_alarm_rule():
    """Thresholds h*c_k alarm exactly where min_k eta_k / c_k > h, on the calibration D2 rollouts too."""
    rng = np.random.default_rng(0)
    s1, s2, lengths = ar1_scores(rng, (50,), 30)
    eta = {"a": windowed_batch(s1, lengths, 3), "b": windowed_batch(s2, lengths, 3)}
    th = fit_joint("constant", eta, lengths, 0.1)
    h = th["a"].params["height"]
    assert th["a"].params["height"] == th["b"].params["height"]
    for name in eta:
        assert th[name](0) == pytest.approx(h * th[name].params["scale"])
    z = np.minimum(eta["a"] / th["a"].params["scale"], eta["b"] / th["b"].params["scale"])
    mask = step_mask(lengths, 30)
    with np.errstate(invalid="ignore"):
        by_height = ((z > h) & mask).any(axis=-1)
        by_thresholds = ((eta["a"] > th["a"](0)) & (eta["b"] > th["b"](0)) & mask).any(axis=-1)
    assert np.array_equal(by_height, by_thresholds) and 0 < by_thresholds.sum() < 50
    band = fit_joint("band", eta, lengths, 0.1)
    assert band["a"].guaranteed and band["a"].kind == "band" and band["a"].params["joint"]


def test_joint_thresholds_save_and_load(tmp_path):
    rng = np.random.default_rng(1)
    s1, s2, lengths = ar1_scores(rng, (40,), 20)
    th = fit_joint("band", {"a": s1, "b": s2}, lengths, 0.1)["a"]
    assert load_threshold(save_threshold(th, tmp_path / "a.json")) == th


def test_a_score_at_zero_on_every_d1_rollout_takes_a_positive_scale_and_stays_valid():
    """The clock on calibration successes that all end at their first decision: 0 everywhere in D1. The joint alarm
    still calibrates (was: an error that stopped the whole evaluation), and the OR with it keeps its FAR below delta."""
    rng = np.random.default_rng(5)
    s1, _, lengths = ar1_scores(rng, (400,), 12)
    clock = np.zeros_like(s1)  # every rollout ends (or is read) at decision 0 for the clock
    th = fit_joint("constant", {"a": s1[:200], "clock": clock[:200]}, lengths[:200], 0.1, rule="or", seed=0)
    assert th["clock"].params["scale"] == 1.0 and np.isfinite(th["clock"].values(12)).all()
    test, mask = slice(200, None), step_mask(lengths[200:], 12)
    with np.errstate(invalid="ignore"):
        alarms = ((s1[test] > th["a"].values(12)) | (clock[test] > th["clock"].values(12))) & mask
    assert alarms.any(axis=-1).mean() <= 0.1 + 3 * np.sqrt(0.1 * 0.9 / 200)


def test_joint_errors_name_the_fix():
    rng = np.random.default_rng(2)
    s1, s2, lengths = ar1_scores(rng, (30,), 20)
    with pytest.raises(InsufficientCalibrationError, match=r"D2 rollouts.*at least 37 calibration rollouts in total \(got M=30\)"):
        fit_joint("constant", {"a": s1, "b": s2}, lengths, 0.05)
    with pytest.raises(ValueError, match="time-varying"):
        fit_joint("time_varying", {"a": s1, "b": s2}, lengths, 0.1)
    with pytest.raises(ValueError, match="differ from the other scores"):
        fit_joint("constant", {"a": s1, "b": s2[:, :10]}, lengths, 0.1)
    with pytest.raises(ValueError, match="use kind='band'"):
        fit_joint("constant", {"a": -s1, "b": s2}, lengths, 0.1)


def test_repr_says_joint_and_how_many_rollouts_count_toward_the_level():
    """M is every calibration rollout; a joint or band threshold's level rests on its D2 rollouts alone."""
    rng = np.random.default_rng(2)
    s1, s2, lengths = ar1_scores(rng, (40,), 20)
    joint = repr(fit_joint("constant", {"a": s1, "b": s2}, lengths, 0.1)["a"])
    assert "M=40, D2=20, joint=True," in joint
    assert "D2=20," in repr(fit_threshold("band", s1, lengths, 0.1)) and "D2" not in repr(fit_threshold("constant", s1, lengths, 0.1))
