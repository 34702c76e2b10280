"""Windowed sums (offline == online), ratios, AND / OR / single alarms and first-alarm indices."""

from __future__ import annotations

import numpy as np
import pytest

from calibration import fit_band, fit_constant, pad_rollouts
from fiper.aggregation import (
    OnlineAlarm,
    WindowedSum,
    combine,
    evaluate_alarms,
    first_alarm_index,
    threshold_ratio,
    windowed_sum,
)


def test_windowed_sum_by_hand_and_padding():
    scores, lengths = pad_rollouts([[1.0, 2.0, 3.0, 4.0, 5.0], [10.0, 20.0]])
    eta = windowed_sum(scores, 2, lengths)
    np.testing.assert_array_equal(eta[0], [1.0, 3.0, 5.0, 7.0, 9.0])  # partial at the start
    np.testing.assert_array_equal(eta[1, :2], [10.0, 30.0])
    assert np.isnan(eta[1, 2:]).all()
    np.testing.assert_array_equal(windowed_sum(scores, 1, lengths)[0], scores[0])
    np.testing.assert_array_equal(windowed_sum(scores, 100, lengths)[0], np.cumsum(scores[0]))


def test_window_grid_in_one_call():
    rng = np.random.default_rng(0)
    scores = rng.random((6, 50))
    lengths = rng.integers(1, 51, 6)
    grid = windowed_sum(scores, [1, 7, 25, 60], lengths)
    assert grid.shape == (4, 6, 50)
    for k, w in enumerate([1, 7, 25, 60]):
        np.testing.assert_array_equal(grid[k], windowed_sum(scores, w, lengths))


def test_online_matches_offline():
    rng = np.random.default_rng(1)
    scores = rng.exponential(50.0, size=(3, 3000))
    lengths = np.array([3000, 1234, 1])
    for w in (1, 3, 25, 50, 4000):
        offline = windowed_sum(scores, w, lengths)
        online = WindowedSum(w)
        for i in range(3):
            online.reset()
            got = np.array([online.update(v) for v in scores[i, : lengths[i]]])
            np.testing.assert_allclose(got, offline[i, : lengths[i]], rtol=0, atol=1e-9)
            assert online.steps == lengths[i]


def test_windowed_sum_errors():
    with pytest.raises(ValueError, match="finite"):
        WindowedSum(3).update(np.nan)
    with pytest.raises(ValueError, match=">= 1"):
        WindowedSum(0)
    with pytest.raises(ValueError, match="rollout 0 .* step 1"):
        windowed_sum(np.array([[1.0, np.nan, 2.0]]), 2)
    with pytest.raises(ValueError, match=">= 1"):
        windowed_sum(np.ones((2, 3)), [2, 0])


def test_threshold_ratio():
    assert threshold_ratio(3.0, 2.0) == 1.5
    assert threshold_ratio(0.2, 0.4) == 0.5
    # gamma <= 0: r > 1 exactly when eta > gamma
    eta = np.array([-3.0, -2.0, -1.0, 0.0, 1.0])
    assert list(threshold_ratio(eta, -2.0) > 1) == list(eta > -2.0)
    assert list(threshold_ratio(eta, 0.0) > 1) == list(eta > 0.0)
    assert threshold_ratio(0.0, 0.0) == 1.0


def test_combination_rules_and_first_alarm():
    r = np.array([[0.5, 1.2, 1.5, 0.9], [1.1, 0.8, 1.6, 2.0]])  # two indicators, four steps
    np.testing.assert_array_equal(combine(r, "and"), [0.5, 0.8, 1.5, 0.9])
    np.testing.assert_array_equal(combine(r, "or"), [1.1, 1.2, 1.6, 2.0])
    np.testing.assert_array_equal(combine(r[:1], "single"), r[0])
    with pytest.raises(ValueError, match="exactly one"):
        combine(r, "single")
    with pytest.raises(ValueError, match="unknown alarm rule"):
        combine(r, "xor")
    np.testing.assert_array_equal(first_alarm_index(combine(r, "and") > 1), 2)
    np.testing.assert_array_equal(first_alarm_index(combine(r, "or") > 1), 0)
    alarms = np.array([[[False, False, True, True], [False] * 4], [[True, False, False, False], [False, True, False, True]]])
    np.testing.assert_array_equal(first_alarm_index(alarms), [[2, -1], [0, 1]])


def _hand_case():
    # thresholds: A constant 2.0, B constant 3.0; window 1 so eta = score.
    a = np.array([[1.0, 2.5, 2.5, 1.0], [3.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    b = np.array([[1.0, 1.0, 4.0, 4.0], [1.0, 1.0, 1.0, 5.0], [1.0, 4.0, 1.0, 1.0]])
    return {"a": a, "b": b}, {"a": 1, "b": 1}, {"a": 2.0, "b": 3.0}


def test_evaluate_alarms_and_or_single_by_hand():
    scores, windows, thresholds = _hand_case()
    both = evaluate_alarms(scores, windows, thresholds, rule="and")
    np.testing.assert_array_equal(both.first_alarm, [2, -1, -1])
    np.testing.assert_array_equal(both.crossed, [[True, True], [False, False], [False, False]])
    either = evaluate_alarms(scores, windows, thresholds, rule="or")
    np.testing.assert_array_equal(either.first_alarm, [1, 0, 1])
    assert either.crossed_names(0) == ("a",) and either.crossed_names(1) == ("a",) and either.crossed_names(2) == ("b",)
    np.testing.assert_array_equal(either.flagged, [True, True, True])
    np.testing.assert_allclose(both.combined[0], [1 / 3, 1 / 3, 1.25, 0.5])  # min(a / 2, b / 3)
    np.testing.assert_allclose(either.max_ratio, [4 / 3, 5 / 3, 4 / 3])
    only_b = evaluate_alarms({"b": scores["b"]}, {"b": 1}, {"b": 3.0}, rule="single")
    np.testing.assert_array_equal(only_b.first_alarm, [2, 3, 1])
    with pytest.raises(ValueError, match="exactly one"):
        evaluate_alarms(scores, windows, thresholds, rule="single")
    with pytest.raises(ValueError, match="thresholds must name"):
        evaluate_alarms(scores, windows, {"a": 1.0})


def test_windows_and_lengths_in_offline_alarms():
    scores, lengths = pad_rollouts([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0]])
    trace = evaluate_alarms({"s": scores}, {"s": 3}, {"s": 2.5}, lengths, rule="single")
    np.testing.assert_array_equal(trace.eta[0, 0], [1.0, 2.0, 3.0, 3.0])
    np.testing.assert_array_equal(trace.first_alarm, [2, -1])  # the short rollout never reaches 3
    assert not trace.alarm[1].any() and np.isnan(trace.combined[1, 2:]).all()


def test_online_alarm_matches_offline_with_fitted_thresholds():
    rng = np.random.default_rng(2)
    cal = {n: rng.gamma(2.0, size=(40, 30)) for n in ("ood", "ace")}
    windows = {"ood": 5, "ace": 8}
    thresholds = {
        "ood": fit_band(windowed_sum(cal["ood"], 5), None, 0.1),
        "ace": fit_constant(windowed_sum(cal["ace"], 8), None, 0.1),
    }
    test = {n: rng.gamma(4.0, size=(12, 45)) for n in ("ood", "ace")}  # longer than calibration
    lengths = rng.integers(5, 46, 12)
    for rule in ("and", "or"):
        offline = evaluate_alarms(test, windows, thresholds, lengths, rule=rule)
        assert 0 < offline.flagged.sum() < 12 or rule == "or"
        online = OnlineAlarm(thresholds, windows, rule)
        for i in range(12):
            online.reset()
            steps = [online.step({n: test[n][i, t] for n in test}) for t in range(lengths[i])]
            np.testing.assert_array_equal([s.alarm for s in steps], offline.alarm[i, : lengths[i]])
            np.testing.assert_allclose([s.combined_ratio for s in steps], offline.combined[i, : lengths[i]], atol=1e-9)
            assert online.first_alarm == (offline.first_alarm[i] if offline.first_alarm[i] >= 0 else None)
            if offline.first_alarm[i] >= 0:
                assert steps[offline.first_alarm[i]].crossed == offline.crossed_names(i)
    with pytest.raises(ValueError, match="lack indicator"):
        OnlineAlarm(thresholds, windows).step({"ood": 1.0})
