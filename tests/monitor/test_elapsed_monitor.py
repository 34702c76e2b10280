"""The elapsed-time reference as a deployable monitor: spec, calibration, online == offline, monitor.json round trip."""

from __future__ import annotations

import numpy as np
import pytest

from fiper.monitor import FailureMonitor, PolicyIdentity, load_monitor, save_monitor
from fiper.monitor.spec import MonitorSpec
from fiper.scores.base import ScoreFitData

IDENTITY = PolicyIdentity(embedding_dim=4, num_samples=3, horizon=2, action_dim=2, n_action_steps=1, name="toy")


def _monitor(extra: dict | None = None) -> FailureMonitor:
    """elapsed (window 1, constant) fitted and calibrated on 40 successes of 10..29 decisions."""
    rng = np.random.default_rng(0)
    ends = np.cumsum(rng.integers(10, 30, size=40))
    n = int(ends[-1])
    data = ScoreFitData(rng.normal(size=(n, 4)), rng.normal(size=(n, 3, 2, 2)), ends)
    scores = {"elapsed": {"score": "elapsed"}, **(extra or {})}
    spec = MonitorSpec.of({"scores": scores, "windows": {s: 1 for s in scores}, "rule": "single" if len(scores) == 1 else "or",
                           "threshold_type": "constant"})
    monitor = FailureMonitor.from_spec(spec, data, IDENTITY)
    monitor.calibrate(monitor.score_offline(data.embeddings, data.samples, ends), ends, delta=0.1)
    return monitor


def test_elapsed_alarms_once_an_episode_outlasts_the_calibration_quantile():
    monitor = _monitor()
    assert monitor.needs == frozenset()
    gamma = float(np.asarray(monitor.thresholds["elapsed"].curve).reshape(-1)[0])
    # conformal rank ceil(41 * 0.9) = 37 of the 40 calibration maxima (length - 1), sorted
    lengths = np.diff(np.r_[0, np.cumsum(np.random.default_rng(0).integers(10, 30, size=40))])
    assert gamma == pytest.approx(np.sort(lengths - 1)[36])
    ends = np.array([5, 5 + int(gamma) + 1, 5 + int(gamma) + 1 + int(gamma) + 3])
    trace = monitor.alarms_offline(monitor.score_offline(None, None, ends), ends)
    np.testing.assert_array_equal(trace.first_alarm, [-1, -1, int(gamma) + 1])  # alarms at the first decision past gamma
    monitor.reset()
    online = [monitor.step(None, None) for _ in range(int(gamma) + 3)]
    assert [v.scores["elapsed"] for v in online[:3]] == [0.0, 1.0, 2.0]
    assert next(i for i, v in enumerate(online) if v.alarm) == int(gamma) + 1
    assert not any(v.failsafe for v in online)


def test_elapsed_beside_a_score_with_tensors_survives_monitor_json(tmp_path):
    monitor = _monitor({"knn": {"score": "knn", "k": 2}})
    save_monitor(monitor, tmp_path / "m")
    loaded = load_monitor(tmp_path / "m")
    assert loaded.spec == monitor.spec and loaded.needs == frozenset({"embedding"})
    rng = np.random.default_rng(3)
    ends = np.array([12, 40, 55])
    emb = rng.normal(size=(55, 4))
    a, b = monitor.score_offline(emb, None, ends), loaded.score_offline(emb, None, ends)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    np.testing.assert_array_equal(loaded.alarms_offline(b, ends).first_alarm, monitor.alarms_offline(a, ends).first_alarm)
    loaded.reset()
    online = [loaded.step(emb[12 + i], None) for i in range(28)]
    assert [v.scores["elapsed"] for v in online] == list(map(float, range(28)))
    trace = loaded.alarms_offline(b, ends)
    assert next((i for i, v in enumerate(online) if v.alarm), -1) == trace.first_alarm[1]
