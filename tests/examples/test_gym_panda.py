"""panda-gym's PandaPush-v3 example: the parts that run without panda-gym (which the suite does not install): the
factory's message, severities checked before an env is built, the expert's phases and commanded directions on
constructed observations, the simulation rebuilt at every reset, and the pipeline config composing with its cells,
factories, control period and outcome-sweep settings."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from example_pipeline import compose_example, shift_factories

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # the example is imported as examples.gym_panda, as from the repository root

from examples.gym_panda import envs as panda  # noqa: E402
from examples.gym_panda.expert import BEHIND, CONTACT, HIGH, LOW, PUSH_SPEED, PushExpert  # noqa: E402


@pytest.mark.skipif(importlib.util.find_spec("panda_gym") is not None, reason="panda-gym is installed")
def test_the_factory_without_panda_gym_names_the_install():
    with pytest.raises(ModuleNotFoundError, match=r"PandaPush-v3 needs panda-gym: pip install panda-gym"):
        panda.make_panda()


@pytest.mark.parametrize("factory", [panda.obs_noise, panda.weak_arm, panda.wide_start, panda.slippery])
@pytest.mark.parametrize("severity", [2.0, -0.1, "strong"])
def test_every_shift_refuses_a_severity_outside_0_1_before_an_env_is_built(factory, severity):
    with pytest.raises(ValueError, match=rf"{factory.__name__}: severity must be a number in \[0, 1\], got {severity!r}"):
        factory(severity=severity)


def _obs(ee, cube, goal):
    state = np.zeros(18)
    state[0:3], state[6:9] = ee, cube
    return {"observation": state, "achieved_goal": np.asarray(cube, float), "desired_goal": np.asarray(goal, float)}


def test_the_expert_goes_behind_the_cube_on_the_far_side_from_the_goal_lowers_and_pushes_towards_the_goal():
    expert = PushExpert(env=None)
    expert.reset(0)
    cube, goal = np.array([0.0, 0.0, 0.02]), np.array([0.1, 0.0, 0.02])  # the goal is in +x: the push starts in -x
    first = expert.act(_obs([0.04, 0.0, 0.2], cube, goal), {})
    assert expert.strategy == "behind"
    assert first[0] == -1.0 and first[1] == 0.0 and first[2] == pytest.approx(-0.4)  # back past the cube, descending slowly
    down = expert.act(_obs([-BEHIND + 0.005, 0.0, HIGH], cube, goal), {})  # within 1 cm of the start, high
    assert expert.strategy == "down" and down[2] == pytest.approx(-0.4) and down[0] == pytest.approx(-0.1) and down[1] == 0.0
    push = expert.act(_obs([-BEHIND, 0.0, LOW], cube, goal), {})
    assert expert.strategy == "push"
    assert push[0] == pytest.approx(PUSH_SPEED) and push[1] == pytest.approx(0.0)  # towards the goal, at the push speed
    # the end effector is 1 cm to the side of the line behind the cube: the push steers it back, still going on
    beside = expert.act(_obs([-CONTACT, -0.01, LOW], cube, goal), {})
    assert expert.strategy == "push" and beside[0] == pytest.approx(PUSH_SPEED) and beside[1] == pytest.approx(0.2)
    expert.reset(1)
    assert expert.strategy == "behind"


def test_the_expert_rises_before_going_round_a_cube_it_is_beside_and_goes_round_again_off_the_line():
    expert = PushExpert(env=None)
    expert.reset(0)
    cube, goal = np.array([0.0, 0.0, 0.02]), np.array([0.0, 0.1, 0.02])  # the goal is in +y
    expert.phase = "push"
    action = expert.act(_obs([0.05, 0.0, LOW], cube, goal), {})  # beside the cube, 5 cm off the push line
    assert expert.strategy == "behind"
    assert action[0] == 0.0 and action[1] == 0.0 and action[2] > 0.9  # straight up first, not through the cube


class Counted(gym.Env):
    """A stand-in for PandaPush: counts the simulations built."""

    built = 0
    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)

    def __init__(self):
        Counted.built += 1
        self.closed = False

    def reset(self, *, seed=None, options=None):
        return np.zeros(2, np.float32), {}

    def close(self):
        self.closed = True


def test_the_simulation_is_built_anew_at_every_reset_and_the_old_one_closed():
    Counted.built = 0
    env = panda.FreshSimulation(Counted)
    first = env.env
    env.reset(seed=0)
    env.reset(seed=0)
    assert Counted.built == 3 and first.closed and env.env is not first and not env.env.closed


def test_the_pipeline_config_composes_with_its_cells_factories_period_and_outcome_sweep():
    cfg = compose_example("gym_panda", "pipeline_panda")
    env = compose_example("gym_panda", "env/panda")["env"]
    assert cfg.train.checkpoint is None and cfg.collect.expert == "examples.gym_panda.expert:PushExpert"
    assert env.factory == "examples.gym_panda.envs:make_panda" and env.control_period_s == pytest.approx(0.04)
    assert shift_factories(cfg, panda) == ["obs_noise", "weak_arm", "wide_start", "slippery"]
    assert list(cfg.monitor.scores.ace.dims) == [0, 1, 2]
    assert list(cfg.act.responses) == ["hold", "retreat", "return_retry"]
    assert {"context.position_dims=[0,1,2]", "context.gripper_dims=[]", "context.action_mode=velocity"} <= set(cfg.act.overrides)
