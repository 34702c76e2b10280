"""The pipeline names its own settings when the rollouts hold too few successes: no success in the calibration
rollouts stops before the monitor (not with the monitor's bare error), and a δ grid the evaluation cannot attain
names rollouts.calibration_episodes, evaluate.split.calibration and evaluate.deltas."""

from __future__ import annotations

import numpy as np
import pytest

from calibration import InsufficientCalibrationError
from fiper.storage import EpisodeStore
from launch.pipeline import calibration_hint, check_fit_successes


def store_of(path, successes):
    store = EpisodeStore.create(path)
    for i, ok in enumerate(successes):
        store.append_episode({"obs": np.zeros((3, 2), np.float32), "action": np.zeros((3, 2), np.float32)}, meta=
                             {"success": ok, "failure_step": -1 if ok else 2, "failure_reason": "" if ok else "timeout",
                              "seed": i, "shift": "none", "severity": 0.0})
    return path


def test_calibration_rollouts_without_a_success_stop_before_the_monitor_naming_their_setting(tmp_path):
    with pytest.raises(ValueError, match=r"of its 3 episodes 0 succeeded.*The pipeline stopped before the live monitor; .*"
                                         r"rollouts.calibration_episodes: more calibration rollouts"):
        check_fit_successes(store_of(tmp_path / "cal.zarr", [False] * 3), "the live monitor",
                            "rollouts.calibration_episodes: more calibration rollouts")
    check_fit_successes(store_of(tmp_path / "ok.zarr", [False, True]))  # one success: nothing to stop


def test_an_unattainable_grid_in_the_evaluate_stage_names_the_pipeline_keys():
    with pytest.raises(InsufficientCalibrationError, match=r"evaluate stage: 9 calibration episodes.*In the pipeline: raise "
                                                          r"rollouts.calibration_episodes .*, evaluate.split.calibration \(now 0.5\) "
                                                          r"or evaluate.deltas \(now \[0.1\]\)"):
        with calibration_hint("evaluate stage", "evaluate.deltas", [0.1], ", evaluate.split.calibration (now 0.5)"):
            raise InsufficientCalibrationError("9 calibration episodes, need 17.")
    with pytest.raises(InsufficientCalibrationError, match=r"or monitor.delta \(now 0.05\)"):
        with calibration_hint("live monitor stage", "monitor.delta", 0.05):
            raise InsufficientCalibrationError("too few.")
    with pytest.raises(InsufficientCalibrationError, match=r"evaluate.deltas \(now null: launch/conf/evaluate.yaml's grid\)"):
        with calibration_hint("evaluate stage", "evaluate.deltas", None):
            raise InsufficientCalibrationError("too few.")
