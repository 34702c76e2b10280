"""The stress sweep's summary counts every episode of its store, those recorded before a resume too."""

from __future__ import annotations

import numpy as np

from fiper.control import RolloutRecorder
from fiper.control.sweep import SweepSummary, run_sweep
from fiper.storage import EpisodeStore


def _episode(store: EpisodeStore, shift: str, severity: float, seed: int, success: bool, alarm: int) -> None:
    meta = {"success": success, "failure_step": -1 if success else 5, "failure_reason": "" if success else "dropped",
            "shift": shift, "severity": severity, "seed": seed, "first_alarm_step": alarm}
    store.append_episode({"action": np.zeros((8, 2), np.float32)}, decisions={"env_step": np.arange(0, 8, 4)}, meta=meta)


def _never(*_):
    raise AssertionError("an episode the store holds was run again")


def test_a_resumed_sweep_counts_the_episodes_recorded_before_it(tmp_path):
    store = EpisodeStore.create(tmp_path / "r.zarr", attrs={"task": "t"})
    for seed, (ok, alarm) in enumerate([(True, -1), (False, 3), (True, 4)]):
        _episode(store, "none", 0.0, seed, ok, alarm)
    _episode(store, "obstacle", 0.5, 0, False, 2)  # a cell of an earlier run this one does not name
    summary = run_sweep(_never, None, [("none", 0.0)], range(3), RolloutRecorder(tmp_path / "r.zarr"), progress=False)
    assert summary.run_now == 0
    assert summary.rows == {("none", 0.0): {"episodes": 3, "success": 2, "alarmed": 2},
                            ("obstacle", 0.5): {"episodes": 1, "success": 0, "alarmed": 1}}
    assert "4 episodes in the store: 0 run now, 4 recorded before" in summary.table()


def test_a_summary_of_episodes_run_now_only_says_nothing_of_earlier_ones():
    summary = SweepSummary()
    summary.add("none", 0.0, True, False)
    assert summary.run_now == 1 and "recorded before" not in summary.table()
