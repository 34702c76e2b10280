"""ManiSkill3's PushCube-v1 example: the parts that run without mani-skill (which the suite does not install): the
factory's message, severities checked before an env is built, the expert's phases and commanded motions on constructed
observations, a shift's setup applied after every reset, and the pipeline config composing with its cells, factories
and outcome-sweep settings."""

from __future__ import annotations

import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from example_pipeline import compose_example, shift_factories

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # the example is imported as examples.maniskill_push, as from the repository root

from examples.maniskill_push import envs as push  # noqa: E402
from examples.maniskill_push.expert import (BEHIND, CLOSED, CONTACT, CUBE, GOAL, HIGH, LOW, PUSH_SPEED, TCP,  # noqa: E402
                                            PushExpert)


def test_the_factory_without_mani_skill_names_the_install(monkeypatch):
    for name in ("mani_skill", "mani_skill.envs", "mani_skill.utils.wrappers.gymnasium"):
        monkeypatch.setitem(sys.modules, name, None)  # as without it, also where it is installed
    with pytest.raises(ModuleNotFoundError, match=r"PushCube-v1 needs ManiSkill3: pip install mani-skill"):
        push.make_push()


@pytest.mark.parametrize("factory", [push.obs_noise, push.weak_arm, push.wide_start, push.heavy_cube])
@pytest.mark.parametrize("severity", [2.0, -0.1, "strong"])
def test_every_shift_refuses_a_severity_outside_0_1_before_an_env_is_built(factory, severity):
    with pytest.raises(ValueError, match=rf"{factory.__name__}: severity must be a number in \[0, 1\], got {severity!r}"):
        factory(severity=severity)


def _obs(tcp, cube, goal):
    """ManiSkill's 35-d PushCube state: the tool centre point's position at 18:21, the goal's at 25:28, the cube's at 28:31."""
    state = np.zeros(35, np.float32)
    state[TCP], state[GOAL], state[CUBE] = tcp, goal, cube
    return state


def test_the_expert_goes_behind_the_cube_lowers_and_pushes_towards_the_goal_with_closed_fingers():
    expert = PushExpert(env=None)
    expert.reset(0)
    cube, goal = np.array([0.0, 0.0, 0.02]), np.array([0.2, 0.0, 0.001])  # PushCube's goal: 0.2 m ahead in +x
    first = expert.act(_obs([0.01, 0.04, 0.18], cube, goal), {})  # the arm's start above the cube
    assert expert.strategy == "behind" and first.shape == (4,) and first.dtype == np.float32
    # 10 per metre of error, clipped to [-1, 1]: back to x = -0.06 (-0.7), over to y = 0 (-0.4), down to 8 cm (-1)
    assert first.tolist() == pytest.approx([-0.7, -0.4, -1.0, CLOSED])
    down = expert.act(_obs([-BEHIND + 0.005, 0.0, HIGH], cube, goal), {})  # within 1 cm of the start, high
    assert expert.strategy == "down" and down[2] == pytest.approx(-0.6) and down[0] == pytest.approx(-0.05) and down[1] == 0.0
    push_action = expert.act(_obs([-BEHIND, 0.0, LOW], cube, goal), {})
    assert expert.strategy == "push"
    assert push_action[0] == pytest.approx(PUSH_SPEED) and push_action[1] == pytest.approx(0.0) and push_action[3] == CLOSED
    # 1 cm to the side of the line behind the cube: the push steers back (0.1 towards it) while going on
    beside = expert.act(_obs([-CONTACT, -0.01, LOW], cube, goal), {})
    assert expert.strategy == "push" and beside[0] == pytest.approx(PUSH_SPEED) and beside[1] == pytest.approx(0.1)
    expert.reset(1)
    assert expert.strategy == "behind"


def test_the_expert_rises_before_going_round_a_cube_it_is_beside():
    expert = PushExpert(env=None)
    expert.reset(0)
    expert.phase = "push"
    action = expert.act(_obs([0.0, 0.05, LOW], [0.0, 0.0, 0.02], [0.2, 0.0, 0.001]), {})  # 5 cm off the push line
    assert expert.strategy == "behind"
    assert action[0] == 0.0 and action[1] == 0.0 and action[2] == pytest.approx(0.6)  # straight up first, not through the cube


class Scene(gym.Env):
    """A stand-in for PushCube: counts resets and what a shift's setup did to it."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (35,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)

    def __init__(self):
        self.resets, self.moved = 0, 0

    def reset(self, *, seed=None, options=None):
        self.resets += 1
        return np.zeros(35, np.float32), {}

    def get_obs(self):
        import torch

        return torch.full((1, 35), float(self.moved))


def test_a_shift_setup_runs_after_every_reset_and_a_moved_scene_is_observed_again():
    def move(inner):
        inner.moved += 1
        return True

    env = push.AfterReset(Scene(), move)
    for n in (1, 2):
        obs, _ = env.reset(seed=n)
        assert env.unwrapped.resets == n and env.unwrapped.moved == n
        assert obs.shape == (35,) and obs.dtype == np.float32 and (obs == n).all()  # the scene after the setup, not before
    quiet = push.AfterReset(Scene(), lambda inner: False)
    assert (quiet.reset(seed=0)[0] == 0).all()


def test_the_weak_arm_scales_the_motion_not_the_fingers_and_the_noise_follows_the_seed():
    weak = push.WeakArm(Scene(), severity=1.0)
    assert weak.action(np.array([1.0, -1.0, 0.5, CLOSED])).tolist() == pytest.approx([0.3, -0.3, 0.15, CLOSED])
    from examples.seeded_noise import SeededObservationNoise

    noisy = SeededObservationNoise(Scene(), 0.01, dtype=np.float32)  # what push.obs_noise wraps round its env at severity 1
    first = noisy.reset(seed=3)[0]
    again = noisy.reset(seed=3)[0]
    other = noisy.reset(seed=4)[0]
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert 0.005 < float(np.std(first)) < 0.02 and first.dtype == np.float32
    keyed = SeededObservationNoise(gym.Env(), 0.01, key="observation").observation({"observation": np.zeros(4), "goal": np.ones(2)})
    assert keyed["goal"].tolist() == [1.0, 1.0] and 0 < np.abs(keyed["observation"]).max() < 0.1  # a dict's other keys exact


def test_the_pipeline_config_composes_with_its_cells_factories_and_outcome_sweep():
    cfg = compose_example("maniskill_push", "pipeline_maniskill_push")
    env = compose_example("maniskill_push", "env/maniskill_push")["env"]
    assert cfg.train.checkpoint is None and cfg.collect.expert == "examples.maniskill_push.expert:PushExpert"
    assert env.factory == "examples.maniskill_push.envs:make_push" and env.name is None
    assert "control_period_s" not in env  # read from the env's control_timestep
    assert shift_factories(cfg, push) == ["obs_noise", "weak_arm", "wide_start", "heavy_cube"]
    assert list(cfg.monitor.scores.ace.dims) == [0, 1, 2]
    assert list(cfg.act.responses) == ["hold", "retreat", "return_retry"] and cfg.act.videos is False
    assert {"context.position_dims=[0,1,2]", "context.gripper_dims=[3]", "context.action_mode=velocity"} <= set(cfg.act.overrides)
