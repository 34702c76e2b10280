"""A new alarm rule is one register_rule call: specs, the online alarm and the offline grid all use it."""

from pathlib import Path

import numpy as np
import pytest

from fiper.aggregation import combine
from fiper.evaluation.grid import build_score_grid, candidate_alarms
from fiper.monitor import FailureMonitor, load_monitor, to_padded
from fiper.monitor.spec import MonitorSpec
from fiper.rules import RULES, AlarmRule, register_rule
from fiper.scores import ScoreFitData, make_score

FIXTURE = Path(__file__).parent / "fixtures" / "legacy_v1"


def _second_largest(values, axis=0):
    return np.sort(np.asarray(values), axis=axis).take(-2, axis=axis)


TWO_OF_N = AlarmRule("two_of_n", alarm=lambda x, axis=0: np.asarray(x).sum(axis=axis) >= 2, ratio=_second_largest,
                     min_indicators=2, description="at least two indicators above their thresholds")


@pytest.fixture(scope="module")
def two_of_n():
    register_rule(TWO_OF_N)
    yield TWO_OF_N
    RULES.pop(TWO_OF_N.name)


def test_registered_rule_is_validated_by_the_spec(two_of_n):
    spec = MonitorSpec.of({"scores": {"ace": {}, "knn": {}, "mahalanobis": {}}, "rule": "two_of_n"})
    assert spec.rule == "two_of_n"
    with pytest.raises(ValueError, match="at least 2"):
        MonitorSpec.of({"scores": {"ace": {}}, "rule": "two_of_n"})
    with pytest.raises(ValueError, match="joint calibration"):
        MonitorSpec.of({"scores": {"ace": {}, "knn": {}}, "rule": "two_of_n", "joint": True})
    assert combine(np.array([[True, False], [True, True], [False, True]]), "two_of_n").tolist() == [True, True]


def test_registered_rule_alarms_the_same_online_and_offline(two_of_n):
    d = np.load(FIXTURE / "decisions.npz")
    fitted = load_monitor(FIXTURE / "and_constant_sep")
    knn = make_score("knn", k=3).fit(ScoreFitData(d["cal_emb"][:100], None, [100]))
    scores = {**fitted.scores, "knn": knn}
    windows = {"rnd_oe": 2, "ace": 2, "knn": 1}
    monitor = FailureMonitor(scores, fitted.identity, windows=windows, rule="two_of_n")
    cal_raw = monitor.score_offline(d["cal_emb"], d["cal_smp"], d["cal_ends"])
    monitor.calibrate(cal_raw, d["cal_ends"], delta=0.2, threshold_type="constant")
    ends = d["test_ends"]
    online = []
    for start, end in zip(np.concatenate([[0], ends[:-1]]), ends):
        monitor.reset()
        alarms = [monitor.step(d["test_emb"][t], d["test_smp"][t]).alarm for t in range(start, end)]
        online.append(alarms.index(True) if any(alarms) else -1)
    test_raw = monitor.score_offline(d["test_emb"], d["test_smp"], ends)
    n_cal = len(d["cal_ends"])
    grids = []
    for name in monitor.names:
        cal_pad, cal_len = to_padded(cal_raw[name], d["cal_ends"])
        test_pad, test_len = to_padded(test_raw[name], ends)
        padded = np.full((n_cal + len(test_len), max(cal_pad.shape[1], test_pad.shape[1])), np.nan)
        padded[:n_cal, : cal_pad.shape[1]], padded[n_cal:, : test_pad.shape[1]] = cal_pad, test_pad
        lengths = np.concatenate([cal_len, test_len])
        grids.append(build_score_grid(name, padded, lengths, [windows[name]], np.arange(n_cal), ["constant"], [0.2]))
    offline = candidate_alarms(grids, [[0]] * 3, "constant", "two_of_n", np.arange(n_cal, n_cal + len(ends)), lengths)
    assert online == offline.first_alarm[0, 0].tolist()
    assert 0 < sum(f >= 0 for f in online) < len(online)
