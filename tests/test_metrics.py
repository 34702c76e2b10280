"""Section-7 metrics pinned on a hand-computed case, plus edge cases and grid batching."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fiper.evaluation import (
    auroc,
    average_ranks,
    detection_metrics,
    metric_summary,
    four_way_split,
    lead_time,
)

# Eight rollouts (worked by hand in the comments of each test).
FAILED = np.array([False, False, False, False, True, True, True, True])
OOD = np.array([False, False, True, True, False, False, True, True])
LENGTHS = np.array([10, 12, 8, 11, 21, 15, 9, 18])
FIRST = np.array([-1, 4, -1, -1, 5, -1, 8, 0])
MAX_RATIO = np.array([0.8, 1.3, 0.9, 1.0, 2.0, 0.9, 1.3, 3.0])
ONSET = np.array([-1, -1, -1, -1, 30, 20, 10, -1])


def test_detection_metrics_by_hand():
    m = detection_metrics(FIRST, FAILED, LENGTHS)
    assert (m.n_fail, m.n_succ, m.tp, m.fn, m.tn, m.fp) == (4, 4, 3, 1, 3, 1)
    assert m.tpr == 0.75 and m.tnr == 0.75 and m.accuracy == 0.75
    assert m.max_decisions == 21  # longest evaluated rollout; DT_i = first / 20
    assert m.dt == pytest.approx((5 / 20 + 8 / 20 + 0 / 20) / 3)
    # TWA = 1/2 [ (1/4) ((1 - .25) + (1 - .4) + (1 - 0)) + 3/4 ]
    assert m.twa == pytest.approx(0.5 * (2.35 / 4 + 0.75)) == pytest.approx(0.66875)
    longer = detection_metrics(FIRST, FAILED, LENGTHS, max_decisions=41)
    assert longer.dt == pytest.approx(m.dt / 2)
    with pytest.raises(ValueError, match="shorter than the longest"):
        detection_metrics(FIRST, FAILED, LENGTHS, max_decisions=20)


def test_auroc_with_ties_by_hand():
    # failures [2.0, 0.9, 1.3, 3.0] vs successes [0.8, 1.3, 0.9, 1.0]:
    # pairs won 4 + (1 + 0.5) + (3 + 0.5) + 4 = 13 of 16
    assert auroc(MAX_RATIO, FAILED) == pytest.approx(13 / 16)
    assert auroc([1.0, 1.0, 1.0, 1.0], [True, False, True, False]) == 0.5
    assert auroc([0.1, 0.2, 0.9, 0.8], [False, False, True, True]) == 1.0
    assert auroc([0.9, 0.8, 0.1, 0.2], [False, False, True, True]) == 0.0
    assert auroc([0.1, np.inf, 0.3], [False, True, False]) == 1.0
    np.testing.assert_array_equal(average_ranks([3.0, 1.0, 3.0, 2.0, 3.0]), [4.0, 1.0, 4.0, 2.0, 4.0])
    grid = auroc(np.stack([MAX_RATIO, -MAX_RATIO]), FAILED)
    np.testing.assert_allclose(grid, [13 / 16, 3 / 16])
    with pytest.raises(ValueError, match="NaN"):
        auroc([0.1, np.nan], [True, False])


def test_four_way_split_by_hand():
    split = four_way_split(FIRST, FAILED, OOD)
    got = {k: (v.n, v.flagged, v.flag_rate) for k, v in split.items()}
    assert got == {
        "success_id": (2, 1, 0.5),  # rollouts 0, 1: 1 false alarm
        "success_ood": (2, 0, 0.0),  # 2, 3: benign shift, silent
        "fail_id": (2, 1, 0.5),  # 4, 5
        "fail_ood": (2, 2, 1.0),  # 6, 7
    }


def test_lead_time_by_hand():
    # 2 env steps per decision, 0.05 s per env step. Onset known for rollouts 4, 5, 6.
    # 4: alarm at decision 5 = env 10 < 30 -> 20 steps = 1.0 s early; 5: no alarm;
    # 6: decision 8 = env 16 >= 10 -> late. (7 failed with unknown onset: not counted.)
    lt = lead_time(FIRST, FAILED, ONSET, 2, 0.05)
    assert (lt.n_with_onset, lt.n_before_onset) == (3, 1)
    assert lt.fraction_before_onset == pytest.approx(1 / 3)
    assert lt.median_warning_s == pytest.approx(1.0)
    # An explicit decision -> env step table: rollout 6's decision 8 now happens at env step 9.
    table = np.arange(21)[None, :] * 2 + np.zeros((8, 1), dtype=int)
    table[6, 8] = 9
    lt = lead_time(FIRST, FAILED, ONSET, table, 0.05)
    assert lt.n_before_onset == 2
    assert lt.median_warning_s == pytest.approx((1.0 + 0.05) / 2)
    with pytest.raises(ValueError, match="control_period"):
        lead_time(FIRST, FAILED, ONSET, 2, 0.0)


def test_grid_rows_equal_single_evaluations():
    grid = np.stack([FIRST, np.where(FAILED, 1, -1), np.full(8, -1)])
    batched = detection_metrics(grid, FAILED, LENGTHS)
    for g in range(3):
        single = detection_metrics(grid[g], FAILED, LENGTHS)
        for field in ("tp", "tn", "tpr", "tnr", "accuracy", "dt", "twa"):
            a, b = np.asarray(getattr(batched, field))[g], getattr(single, field)
            assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b), field
    np.testing.assert_allclose(batched.tpr, [0.75, 1.0, 0.0])
    np.testing.assert_allclose(batched.twa, [0.66875, 0.5 * (4 * (1 - 1 / 20) / 4 + 1.0), 0.5])
    lt = lead_time(grid, FAILED, ONSET, 2, 0.05)
    np.testing.assert_array_equal(lt.n_before_onset, [1, 3, 0])
    assert np.isnan(lt.median_warning_s[2])
    np.testing.assert_allclose(lt.median_warning_s[:2], [1.0, 0.9])  # warnings {1.4, 0.9, 0.4}


def test_edge_cases_give_nan_not_crash():
    no_fail = detection_metrics(np.array([-1, 2]), [False, False], [5, 5])
    assert math.isnan(no_fail.tpr) and math.isnan(no_fail.accuracy) and math.isnan(no_fail.twa) and math.isnan(no_fail.dt)
    assert no_fail.tnr == 0.5
    assert math.isnan(auroc([0.5, 1.5], [False, False]))
    no_succ = detection_metrics(np.array([-1, 2]), [True, True], [5, 5])
    assert math.isnan(no_succ.tnr) and math.isnan(no_succ.twa) and no_succ.tpr == 0.5
    no_tp = detection_metrics(np.array([-1, -1, 1]), [True, False, False], [5, 5, 5])
    assert math.isnan(no_tp.dt) and no_tp.twa == pytest.approx(0.5 * 0.5)
    one_step = detection_metrics(np.array([0, -1]), [True, False], [1, 1])
    assert one_step.dt == 0.0 and one_step.twa == 1.0
    nobody = lead_time(np.array([0, -1]), [True, False], [-1, -1], 1, 0.1)
    assert nobody.n_with_onset == 0 and math.isnan(nobody.fraction_before_onset) and math.isnan(nobody.median_warning_s)
    empty_group = four_way_split(np.array([0, -1]), [True, False], [False, False])
    assert empty_group["fail_ood"].n == 0 and math.isnan(empty_group["fail_ood"].flag_rate)


def test_bad_inputs():
    with pytest.raises(ValueError, match="only 5 decisions"):
        detection_metrics(np.array([5, -1]), [True, False], [5, 5])
    with pytest.raises(ValueError, match="-1 for 'no alarm'"):
        detection_metrics(np.array([-2, -1]), [True, False], [5, 5])
    with pytest.raises(ValueError, match="integer"):
        detection_metrics(np.array([0.5, -1.0]), [True, False], [5, 5])
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        detection_metrics(np.array([0, -1]), [True, False, True], [5, 5])
    with pytest.raises(ValueError, match="env_steps"):
        lead_time(FIRST, FAILED, ONSET, np.zeros((3, 4)), 0.1)


def test_detection_metrics_collect_everything():
    report = metric_summary(
        FIRST, MAX_RATIO, FAILED, LENGTHS, ood=OOD, failure_step=ONSET, env_steps=2, control_period=0.05
    )
    assert report["accuracy"] == 0.75 and report["auroc"] == pytest.approx(13 / 16)
    assert report["fail_ood_flag_rate"] == 1.0 and report["success_id_n"] == 2
    assert report["lead_fraction_before_onset"] == pytest.approx(1 / 3)
    assert "lead_median_warning_s" not in metric_summary(FIRST, MAX_RATIO, FAILED, LENGTHS)
