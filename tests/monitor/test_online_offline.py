"""The control loop's alarm (FailureMonitor.step) against the evaluation's vectorised grid.

Same recorded decisions, same calibration episodes: for every rule x threshold type x joint flag
the first alarm of each test episode must be the same decision online and offline.
"""

from pathlib import Path

import numpy as np
import pytest

from fiper.evaluation.grid import build_score_grid, candidate_alarms
from fiper.evaluation.joint import joint_candidate_alarms
from fiper.monitor import FailureMonitor, load_monitor, to_padded

FIXTURE = Path(__file__).parent / "fixtures" / "legacy_v1"
WINDOWS = {"rnd_oe": 3, "ace": 2}
DELTA, SEED, D1 = 0.2, 3, 0.5


@pytest.fixture(scope="module")
def recorded():
    d = np.load(FIXTURE / "decisions.npz")
    fitted = load_monitor(FIXTURE / "and_constant_sep")
    return d, fitted


def _episodes(ends):
    starts = np.concatenate([[0], ends[:-1]])
    return list(zip(starts, ends))


@pytest.mark.parametrize("rule", ["and", "or"])
@pytest.mark.parametrize("kind, joint", [("constant", False), ("band", False), ("time_varying", False), ("constant", True), ("band", True)])
def test_online_first_alarms_equal_the_offline_grid(recorded, rule, kind, joint):
    d, fitted = recorded
    monitor = FailureMonitor(fitted.scores, fitted.identity, windows=WINDOWS, rule=rule)
    cal_raw = monitor.score_offline(d["cal_emb"], d["cal_smp"], d["cal_ends"])
    options = {"seed": SEED, "d1_fraction": D1} if kind == "band" or joint else {}
    monitor.calibrate(cal_raw, d["cal_ends"], delta=DELTA, threshold_type=kind, joint=joint, **options)

    # online: one decision at a time, as MonitoredPolicy calls it
    online = []
    for start, end in _episodes(d["test_ends"]):
        monitor.reset()
        alarms = [monitor.step(d["test_emb"][t], d["test_smp"][t]).alarm for t in range(start, end)]
        online.append(alarms.index(True) if any(alarms) else -1)

    # offline: the evaluation grid over calibration + test episodes padded together
    test_raw = monitor.score_offline(d["test_emb"], d["test_smp"], d["test_ends"])
    n_cal = len(d["cal_ends"])
    grids = []
    for name in monitor.names:
        cal_pad, cal_len = to_padded(cal_raw[name], d["cal_ends"])
        test_pad, test_len = to_padded(test_raw[name], d["test_ends"])
        width = max(cal_pad.shape[1], test_pad.shape[1])
        padded = np.full((n_cal + len(test_len), width), np.nan)
        padded[:n_cal, : cal_pad.shape[1]] = cal_pad
        padded[n_cal:, : test_pad.shape[1]] = test_pad
        lengths = np.concatenate([cal_len, test_len])
        grids.append(build_score_grid(name, padded, lengths, [WINDOWS[name]], np.arange(n_cal), [kind], [DELTA],
                                      d1_fraction=D1, seed=SEED))
    test = np.arange(n_cal, n_cal + len(d["test_ends"]))
    if joint:
        offline = joint_candidate_alarms(grids, [[0], [0]], kind, rule, test, lengths, np.arange(n_cal), [DELTA], d1_fraction=D1, seed=SEED)
    else:
        offline = candidate_alarms(grids, [[0], [0]], kind, rule, test, lengths)
    first = offline.first_alarm[0, 0].tolist()
    assert online == first
    assert any(f >= 0 for f in first) and any(f < 0 for f in first[:6])  # the comparison has alarms and quiet episodes
