"""projected_duration: the clock made aware of where the policy is. A stalled episode is flagged while it stalls,
long before the clock flags it, and successes of every speed stay below the threshold at the calibrated rate."""

from __future__ import annotations

import numpy as np

from calibration.quantile import conformal_quantile
from fiper.scores import ScoreFitData, make_score


def _episodes(rng, n, stall_at=None, timeout=60):
    """Embeddings (progress along a line + noise) of n episodes; each success moves at its own speed (10-16
    decisions); a stalled one stops progressing at ``stall_at`` and runs until ``timeout``."""
    rows, ends = [], []
    for _ in range(n):
        length = int(rng.integers(10, 17))
        progress = np.arange(length) / (length - 1)
        if stall_at is not None:
            progress = np.minimum(np.arange(timeout) / (length - 1), stall_at)
        rows.append(np.stack([progress, rng.normal(0, 0.02, len(progress))], 1))
        ends.append(len(progress))
    return np.concatenate(rows), np.cumsum(ends)


def _maxima(scores, ends):
    return np.array([s.max() for s in np.split(scores, ends[:-1])])


def _first_alarm(scores, ends, threshold):
    return [int(np.argmax(s > threshold)) if (s > threshold).any() else -1 for s in np.split(scores, ends[:-1])]


def test_a_stalled_episode_is_flagged_while_it_stalls_and_successes_at_the_calibrated_rate():
    rng = np.random.default_rng(0)
    fit_x, fit_ends = _episodes(rng, 40)
    cal_x, cal_ends = _episodes(rng, 60)
    test_x, test_ends = _episodes(rng, 200)
    stall_x, stall_ends = _episodes(rng, 20, stall_at=0.3)
    delta = 0.1
    duration = make_score("projected_duration", k=5).fit(ScoreFitData(fit_x, None, fit_ends))
    clock = make_score("elapsed").fit(ScoreFitData(None, None, fit_ends))
    first = {}
    for name, score in (("duration", duration), ("clock", clock)):
        threshold = conformal_quantile(_maxima(score.score_offline(cal_x, None, cal_ends), cal_ends), delta)
        false_alarms = np.mean(_maxima(score.score_offline(test_x, None, test_ends), test_ends) > threshold)
        assert false_alarms <= delta + 3 * np.sqrt(delta * (1 - delta) / 200), (name, false_alarms)
        first[name] = np.array(_first_alarm(score.score_offline(stall_x, None, stall_ends), stall_ends, threshold))
    assert (first["duration"] >= 0).all() and (first["clock"] >= 0).all()
    # stalled at 30 % progress (decision 3-5): the clock waits for the slowest successes (~16 decisions), the
    # projection flags the stall once "so far + still to go from here" outlasts them
    assert np.median(first["duration"]) <= np.median(first["clock"]) - 4, first
