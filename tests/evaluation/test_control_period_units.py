"""A control period in another unit (milliseconds, a rate in Hz) is refused wherever it enters, naming where it
came from and the fix, instead of scaling every warning time in seconds."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from benchmarks.synthetic_stores import SyntheticTask, write_synthetic_store
from fiper.control.period import MAX_PERIOD_S, MIN_PERIOD_S, control_period_s
from fiper.evaluation import EvaluationConfig, RolloutError, load_rollouts
from fiper.evaluation.outcome import read_records
from fiper.storage import EpisodeStore
from launch.evaluate import CHECKS as EVALUATE_CHECKS
from launch.stress import CHECKS as STRESS_CHECKS
from launch.validate import problems

SMALL = dict(n_success_id=3, n_success_ood=1, n_fail_id=1, n_fail_ood=1)
UNIT = r"e\.g\. 0\.1 for 10 Hz"


def test_bounds_lie_around_every_robot_control_rate():
    assert (MIN_PERIOD_S, MAX_PERIOD_S) == (5e-4, 10.0)


@pytest.mark.parametrize("period", [100, 0.0001, 20.0])
def test_a_store_attr_in_another_unit_is_refused_naming_the_store(tmp_path, period):
    path = write_synthetic_store(tmp_path / "ms.zarr", SyntheticTask(control_period_s=period), **SMALL).path
    with pytest.raises(RolloutError, match=rf"ms.zarr: attrs control_period_s = {period:g} s per env step lies outside the "
                                           rf"plausible control periods 0.0005 .. 10 s.*{UNIT}.*set_attrs"):
        load_rollouts(str(path))
    assert load_rollouts(str(path), control_period_s=0.05)["synthetic"].control_period_s == 0.05  # the override fixes it


def test_an_override_in_milliseconds_is_refused_naming_the_config(tmp_path):
    path = write_synthetic_store(tmp_path / "r.zarr", **SMALL).path
    with pytest.raises(RolloutError, match=rf"the configured control_period_s \(control_period_s=...\) = 100 s.*{UNIT}"):
        load_rollouts(str(path), control_period_s=100)
    with pytest.raises(ValueError, match=rf"the configured control_period_s \(control_period_s=...\) = 100 s.*{UNIT}"):
        EvaluationConfig.from_mapping({"control_period_s": 100})
    assert EvaluationConfig.from_mapping({"control_period_s": 0.05}).control_period_s == 0.05


def test_launch_configs_refuse_it_before_anything_runs():
    line = "expected seconds per env step in [0.0005, 10] (not milliseconds, not a rate in Hz) or null"
    assert problems({"control_period_s": 100}, EVALUATE_CHECKS, check_paths=False) == [
        f"control_period_s=100: {line} (e.g. control_period_s=0.1 for 10 Hz)"]
    assert f"env.control_period_s=50: {line} (e.g. env.control_period_s=0.1 for 10 Hz)" in problems(
        {"env": {"control_period_s": 50}}, STRESS_CHECKS, check_paths=False)
    assert problems({"control_period_s": 0.05}, EVALUATE_CHECKS, check_paths=False) == []


@pytest.mark.parametrize("value", [5e-4, 10, 0.05, 4.9e-4, 10.5, 0, -0.1, float("nan"), float("inf"), True, "0.1"])
def test_the_config_check_accepts_exactly_what_the_period_definition_does(value):
    from fiper.control.period import positive_seconds
    from launch.validate import Bad, seconds_per_step

    try:
        positive_seconds(value, "control_period_s")
        plausible = isinstance(value, (int, float)) and not isinstance(value, bool)  # a config gives a number, not text
    except ValueError:
        plausible = False
    try:
        seconds_per_step(value, False)
        accepted = True
    except Bad as bad:
        assert bad.expected == "seconds per env step in [0.0005, 10] (not milliseconds, not a rate in Hz)"
        accepted = False
    assert accepted == plausible


class Kilohertz(gym.Env):
    """An env declaring its rate where a period belongs, and one whose rate is implausibly fast."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,))
    action_space = gym.spaces.Box(-1.0, 1.0, (2,))
    dt = 20.0  # 20 Hz written as a period


class TooFast(Kilohertz):
    dt, control_hz = None, 5000


def test_an_env_or_its_config_in_another_unit_is_refused():
    with pytest.raises(ValueError, match=rf"Kilohertz.dt = 20 s per env step lies outside.*{UNIT}"):
        control_period_s(Kilohertz())
    with pytest.raises(ValueError, match=rf"1 / TooFast.control_hz = 0.0002 s per env step lies outside.*{UNIT}"):
        control_period_s(TooFast())
    with pytest.raises(ValueError, match=rf"env.control_period_s = 100 s per env step lies outside.*{UNIT}"):
        control_period_s(gym.make("CartPole-v1"), 100)


def test_the_outcome_sweep_refuses_a_store_attr_in_milliseconds(tmp_path):
    store = EpisodeStore.create(tmp_path / "without.zarr", attrs={"task": "t", "control_period_s": 100})
    steps = np.arange(0, 8, 4)
    store.append_episode({"action": np.zeros((8, 2))}, decisions={
        "env_step": steps, "alarm": np.zeros(2, bool), "intervention": np.array(["none"] * 2), "timing/total_ms": np.ones(2)},
        meta={"success": True, "failure_step": -1, "failure_reason": "", "shift": "none", "severity": 0.0, "seed": 0})
    with pytest.raises(ValueError, match=rf"without.zarr: attrs control_period_s = 100 s per env step.*{UNIT}"):
        read_records(tmp_path / "without.zarr")
