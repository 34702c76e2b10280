"""A safe controller (the fallback of a force-driven env) is called once on the env's first observation when the
responses are checked, so one written for another observation stops the sweep before it runs: in a sweep no alarm
may ever call it, and on a robot it would fail at the first alarm."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from fiper.interventions import SafeController
from launch import act

WHERE = "launch.act (nothing has run yet)"


class PointGoal(gym.Env):
    """A force-driven point with a goal-conditioned dict observation, as gymnasium-robotics' PointMaze gives it."""

    observation_space = gym.spaces.Dict({"observation": gym.spaces.Box(-5, 5, (4,), np.float64),
                                         "desired_goal": gym.spaces.Box(-5, 5, (2,), np.float64)})
    action_space = gym.spaces.Box(-1, 1, (2,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return {"observation": np.array([0.0, 0.0, 0.5, -0.5]), "desired_goal": np.ones(2)}, {}


def brake(obs):
    return np.clip(-2.0 * obs["observation"][2:4], -1, 1)


def flat_brake(obs):  # written for a flat observation vector
    return np.clip(-2.0 * np.asarray(obs)[2:4], -1, 1)


def three_entries(obs):
    return np.zeros(3)


class Counting:
    def __init__(self):
        self.calls = self.resets = 0

    def __call__(self, obs):
        self.calls += 1
        return np.zeros(2)

    def reset(self):
        self.resets += 1


def configs(controller: str) -> dict:
    return {"brake": act.response_config("brake", {"brake": {"preset": "controller", "fallback": {"controller": controller}}})}


def test_a_controller_that_cannot_read_the_envs_observation_is_refused_before_the_sweep():
    responses = act.check_responses(configs(f"{__name__}:brake"), PointGoal(), WHERE)
    assert isinstance(responses["brake"].fallback, SafeController)
    with pytest.raises(ValueError, match=r"launch.act \(nothing has run yet\): response 'brake' cannot act on this env: the safe "
                                         rf"controller '{__name__}:flat_brake' raised on the env's first observation \(keys \['desired_goal', "
                                         r"'observation'\]\): IndexError.*called with the observation as a dict of its keys"):
        act.check_responses(configs(f"{__name__}:flat_brake"), PointGoal(), WHERE)
    with pytest.raises(ValueError, match=r"returned \[0.0, 0.0, 0.0\] on the env's first observation; expected 2 finite entries"):
        act.check_responses(configs(f"{__name__}:three_entries"), PointGoal(), WHERE)


def test_the_probe_resets_the_controller_after_its_one_call():
    controller = Counting()
    SafeController(controller).probe({"observation": np.zeros(4)}, 2)
    assert (controller.calls, controller.resets) == (1, 1)


def test_launch_stress_probes_the_controller_of_its_response_before_the_sweep():
    from omegaconf import OmegaConf

    from launch.stress import build_response

    spec = act.response_config("brake", {"brake": {"preset": "controller", "fallback": {"controller": f"{__name__}:flat_brake"}}})
    cfg = OmegaConf.create({"response": spec, "context": {"position_dims": None, "gripper_dims": None, "action_mode": "effort"}})
    with pytest.raises(ValueError, match=r"launch.stress \(nothing has run yet\): the response cannot act on this env: the safe "
                                         rf"controller '{__name__}:flat_brake' raised on the env's first observation"):
        build_response(cfg, object(), None, PointGoal())
