"""Episode outcomes and the pairing with the run without fiper, on hand-made episodes with known answers."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from fiper.control.outcome import (DAMAGE, SAFE_STOP, SUCCESS, TIMEOUT, EpisodeRecord, compare, count_outcomes, decision_of,
                                   outcome_label, ran_alike)

STEPS = np.arange(0, 100, 4)  # a decision every 4 env steps


def episode(seed, success=False, reason="", failure_step=-1, alarm=-1, stop=-1, acted=None, ms=10.0, actions=None):
    acted = stop if acted is None else acted
    end = failure_step if failure_step >= 0 else 99
    steps = STEPS[STEPS <= end]
    return EpisodeRecord("obstacle", 1.0, seed, success, failure_step, reason, alarm, stop, acted, steps,
                         np.full(steps.size, ms), actions)


def test_outcome_label_of_each_kind_of_episode():
    assert outcome_label(True, "", -1) == SUCCESS
    assert outcome_label(True, "", 8) == SUCCESS  # a stop that still ended in success
    assert outcome_label(False, "dropped", -1) == DAMAGE
    assert outcome_label(False, "obstacle_collision", 8) == DAMAGE  # stopped, but the damage followed
    assert outcome_label(False, "terminated", -1) == DAMAGE  # an unnamed failure counts as physical
    assert outcome_label(False, "timeout", 8) == SAFE_STOP
    assert outcome_label(False, "timeout", -1) == TIMEOUT
    assert count_outcomes([SUCCESS, TIMEOUT, TIMEOUT]) == {SUCCESS: 1, SAFE_STOP: 0, DAMAGE: 0, TIMEOUT: 2}


# seed: (without fiper, with the response)
PAIRS = {
    0: (episode(0, success=True), episode(0, success=True, ms=25.0)),  # success both times
    1: (episode(1, success=True), episode(1, reason="timeout", failure_step=99, alarm=8, stop=8, ms=25.0)),  # false-alarm stop
    2: (episode(2, reason="dropped", failure_step=30),  # would-be physical failure -> safe stop, alarmed 14 steps early
        episode(2, reason="timeout", failure_step=99, alarm=16, stop=16, ms=25.0)),
    3: (episode(3, reason="obstacle_collision", failure_step=20),  # steered around: -> success, alarmed 12 steps early
        episode(3, success=True, alarm=8, acted=8, ms=25.0)),
    4: (episode(4, reason="timeout", failure_step=99), episode(4, reason="timeout", failure_step=99, alarm=40, stop=40, ms=25.0)),
    5: (episode(5, reason="timeout", failure_step=99), episode(5, reason="timeout", failure_step=99, ms=25.0)),  # nothing changed
    6: (episode(6, reason="off_table", failure_step=12),  # alarm at the onset itself: no warning, damage anyway
        episode(6, reason="off_table", failure_step=12, alarm=12, stop=12, ms=25.0)),
    7: (episode(7, success=True), episode(7, reason="off_table", failure_step=50, alarm=20, stop=20, ms=25.0)),  # damage added
}


def test_compare_counts_what_the_response_changed():
    without = [w for w, _ in PAIRS.values()]
    response = [r for _, r in PAIRS.values()] + [episode(99, success=True)]  # a seed never run without fiper is left out
    res = compare("hold", without, response, control_period_s=0.1)
    assert [r.outcome for r in response[:8]] == [SUCCESS, SAFE_STOP, SAFE_STOP, SUCCESS, SAFE_STOP, TIMEOUT, DAMAGE, DAMAGE]
    assert res.episodes == 8
    assert res.outcomes == {SUCCESS: 2, SAFE_STOP: 3, DAMAGE: 2, TIMEOUT: 1}
    assert res.without == {SUCCESS: 3, SAFE_STOP: 0, DAMAGE: 3, TIMEOUT: 2}
    assert (res.would_be_physical, res.physical_to_success, res.physical_to_safe_stop) == (3, 1, 1)
    assert (res.would_be_timeout, res.timeout_to_success, res.timeout_to_safe_stop) == (2, 0, 1)
    assert (res.successes_without, res.successes_lost, res.false_alarm_stops, res.damage_added) == (3, 2, 1, 1)
    # onsets 30, 20, 12; alarms 16, 8 strictly before, 12 at the onset is not
    assert (res.with_onset, res.alarmed_before_onset) == (3, 2)
    assert res.median_warning_decisions == 3.0  # (7 - 4) and (5 - 2)
    assert res.median_warning_s == pytest.approx(1.3)  # 1.4 s and 1.2 s
    assert (res.decision_ms, res.decision_ms_without, res.cost_ratio) == (25.0, 10.0, 2.5)
    assert res.steered_decisions == 0 and math.isnan(res.steered_cost_ratio)  # a hold steers nothing
    assert res.diverged == 0


def test_the_cost_of_steered_decisions_is_measured_apart():
    """Half the decisions steered at 40 ms, the rest at 12 ms, against 10 ms unmonitored: overall 2.6x, steered 4x."""
    base = episode(1, success=True, ms=10.0)
    steered = episode(1, success=True, ms=12.0)
    flags = np.arange(steered.decision_steps.size) % 2 == 0
    times = np.where(flags, 40.0, 12.0)
    steered = dataclasses.replace(steered, decision_ms=times, decision_steered=flags)
    res = compare("steer", [base], [steered], control_period_s=0.1)
    assert res.steered_decisions == int(flags.sum()) and res.steered_cost_ratio == pytest.approx(4.0)
    assert res.cost_ratio == pytest.approx(np.median(times) / 10.0)


def test_without_onsets_the_lead_is_nan_and_seconds_need_a_period():
    res = compare("stop", [PAIRS[4][0]], [PAIRS[4][1]], control_period_s=float("nan"))
    assert res.with_onset == 0 and res.alarmed_before_onset == 0 and math.isnan(res.median_warning_decisions)
    res = compare("stop", [PAIRS[2][0]], [PAIRS[2][1]], control_period_s=float("nan"))
    assert res.median_warning_decisions == 3.0 and math.isnan(res.median_warning_s)


def test_decision_of_an_env_step_and_the_pairing_check():
    assert [decision_of(STEPS, s) for s in (-1, 0, 3, 4, 30)] == [-1, 0, 0, 1, 7]
    a = np.arange(20.0).reshape(10, 2)
    b = a.copy()
    b[6:] += 1.0  # differs from step 6 on
    assert ran_alike(episode(0, actions=a), episode(0, acted=6, actions=b))  # the response acted at 6: same until then
    assert not ran_alike(episode(0, actions=a), episode(0, acted=8, actions=b))
    assert not ran_alike(episode(0, actions=a), episode(0, actions=b))  # never acted: must match throughout
    res = compare("hold", [episode(0, actions=a)], [episode(0, acted=8, actions=b)], 0.1)
    assert res.diverged == 1
