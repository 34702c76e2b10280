"""refit_after_selection: selection sees one calibration half's thresholds, test the other half's."""

from __future__ import annotations

import numpy as np
import pytest

from calibration import InsufficientCalibrationError
from evaluation_helpers import small_config
from fiper.evaluation import evaluate_rollouts, write_outputs
from fiper.evaluation.grid import build_score_grid, candidate_alarms
from fiper.evaluation.splits import calibration_halves, check_calibration_size, split_episodes
from benchmarks.synthetic_stores import write_synthetic_store
from fiper.monitor.padding import to_padded

METHODS = {"ace": {"scores": ["ace"]}, "mahalanobis": {"scores": ["mahalanobis"]},
           "both": {"scores": ["ace", "mahalanobis"], "rule": "or", "joint": True, "windows": [1, 5]},
           "best": {"select": ["ace", "mahalanobis", "both"]}}


def test_selection_and_test_thresholds_come_from_disjoint_calibration_halves(tmp_path):
    path = write_synthetic_store(tmp_path / "a.zarr", seed=4, n_success_id=90, n_success_ood=8, n_fail_id=12, n_fail_ood=10).path
    config = small_config(methods=METHODS, plot_method=None, deltas=(0.1, 0.2), refit_after_selection=True)
    result = evaluate_rollouts(str(path), config)
    task = result.tasks["synthetic"]
    paths = write_outputs(result, tmp_path / "out", plots=False)
    assert "Refit after selection" in paths["report"].read_text()
    cal_select, cal_final = task.calibration_parts
    assert np.intersect1d(cal_select, cal_final).size == 0
    np.testing.assert_array_equal(np.union1d(cal_select, cal_final), task.split.calibration)
    assert abs(cal_select.size - cal_final.size) <= 1
    ro = task.rollouts
    padded, _ = to_padded(task.scored.raw["mahalanobis"], ro.decision_ends)
    for grids, cal in ((task.selection_grids, cal_select), (task.grids, cal_final)):
        again = build_score_grid("mahalanobis", padded, ro.lengths, grids["mahalanobis"].labels, cal, config.threshold_types,
                                 config.deltas, d1_fraction=config.band_d1_fraction, seed=config.seed)
        for kind in config.threshold_types:
            np.testing.assert_array_equal(again.gamma[kind], grids["mahalanobis"].gamma[kind])
    # test alarms use the final half's thresholds at the window chosen with the selection half's
    res = task.methods["mahalanobis"].types["constant"]
    w = task.grids["mahalanobis"].index(res.windows["mahalanobis"])
    direct = candidate_alarms([task.grids["mahalanobis"]], [[w]], "constant", "single", task.split.test, ro.lengths)
    np.testing.assert_array_equal(direct.first_alarm, res.test_alarms.first_alarm)
    assert not np.array_equal(task.selection_grids["mahalanobis"].gamma["constant"], task.grids["mahalanobis"].gamma["constant"])
    assert {r.selected for r in task.methods["best"].types.values()} <= set(METHODS["best"]["select"])


def test_refit_needs_enough_calibration_in_each_half():
    success, ood = np.ones(100, bool), np.zeros(100, bool)
    split = split_episodes(success, ood, fit=0.4, calibration=0.4, seed=0)  # 40 calibration episodes: 20 per half
    check_calibration_size("t", 100, split, ["constant"], [0.05], calibration=0.4, d1_fraction=0.5)  # 19 needed: whole split fine
    check_calibration_size("t", 100, split, ["constant"], [0.05], calibration=0.4, d1_fraction=0.5, halves=True)  # 20 >= 19
    with pytest.raises(InsufficientCalibrationError, match=r"20 calibration episodes in each half .*needs at least 24 .*refit_after_selection=false"):
        check_calibration_size("t", 100, split, ["constant"], [0.04], calibration=0.4, d1_fraction=0.5, halves=True)
    a, b = calibration_halves(np.arange(7), seed=0)
    assert a.size == 3 and b.size == 4 and np.union1d(a, b).tolist() == list(range(7))
