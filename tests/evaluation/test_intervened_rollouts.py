"""Rollouts in which a response acted are refused by the offline evaluation, and their successes by fit and calibration,
naming the episodes and the fix."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from benchmarks.synthetic_stores import write_synthetic_store
from fiper.evaluation import RolloutError, load_rollouts
from fiper.monitor.decision_data import successful_in_distribution
from fiper.storage import EpisodeStore

SMALL = dict(n_success_id=6, n_success_ood=2, n_fail_id=3, n_fail_ood=3)


def _first_intervention(path, values):
    root = zarr.open_group(str(path), mode="a", zarr_format=2)
    root.create_array("meta/first_intervention_step", data=np.asarray(values, dtype=np.int64))


def test_a_store_where_a_fallback_acted_is_refused_naming_its_episodes(tmp_path):
    path = write_synthetic_store(tmp_path / "held.zarr", **SMALL).path
    steps = np.full(14, -1)
    steps[[3, 9]] = [12, 40]  # a hold took over at these env steps
    _first_intervention(path, steps)
    with pytest.raises(RolloutError, match=r"held.zarr: a response acted in 2 of its 14 episodes .*episodes \[3, 9\]\).*"
                                           r"without a response \(MonitoredPolicy\(policy, None\)"):
        load_rollouts(str(path))


def test_a_store_recorded_without_a_response_is_evaluated(tmp_path):
    path = write_synthetic_store(tmp_path / "plain.zarr", **SMALL).path
    _first_intervention(path, np.full(14, -1))
    assert load_rollouts(str(path))["synthetic"].n_episodes == 14


def test_fit_and_calibration_refuse_a_success_a_response_acted_in_but_not_a_failure(tmp_path):
    path = write_synthetic_store(tmp_path / "steered.zarr", **SMALL).path
    store = EpisodeStore.open(path)
    success_id = np.flatnonzero(store.meta("success").astype(bool) & (store.meta("shift").astype(str) == "none"))
    failed = np.flatnonzero(~store.meta("success").astype(bool))
    steps = np.full(14, -1)
    steps[failed[0]] = 8  # a hold after an alarm on a failure: left out like every failure
    _first_intervention(path, steps)
    assert successful_in_distribution(EpisodeStore.open(path)).tolist() == success_id.tolist()
    steps[success_id[2]] = 16  # a steered success: its batches are not the policy's own
    zarr.open_group(str(path), mode="a", zarr_format=2)["meta/first_intervention_step"][:] = steps
    with pytest.raises(ValueError, match=rf"steered.zarr: a response acted in 1 of its 14 episodes .*episodes "
                                         rf"\[{success_id[2]}\]\); they are successful and in distribution.*"
                                         r"without a response \(MonitoredPolicy\(policy, None\)"):
        successful_in_distribution(EpisodeStore.open(path))
