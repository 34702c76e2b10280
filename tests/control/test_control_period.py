"""Seconds per env step come from the env (its ``dt``) or the config, never from a default."""

from __future__ import annotations

import gymnasium as gym
import pytest

import envs
from fiper.control import RolloutRecorder
from fiper.control.period import control_period_s
from fiper.control.sweep import check_period


class EightyHertz(gym.Env):
    """A user's env that declares its period under fiper's own name."""

    control_period_s = 0.0125
    observation_space = gym.spaces.Box(-1.0, 1.0, (2,))
    action_space = gym.spaces.Box(-1.0, 1.0, (2,))


def test_period_comes_from_the_env_through_its_wrappers():
    env = gym.wrappers.TimeLimit(envs.make_env("pick_place"), max_episode_steps=5)
    assert control_period_s(env) == pytest.approx(0.1)  # envs/base.py: model timestep x substeps
    assert control_period_s(EightyHertz()) == 0.0125
    assert control_period_s(env, 0.1) == pytest.approx(0.1)  # a configured value that agrees


class ManiSkillLike(gym.Env):
    """Declares its period as ManiSkill's BaseEnv does: a ``control_timestep`` property, 1 / control frequency."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,))
    action_space = gym.spaces.Box(-1.0, 1.0, (2,))

    @property
    def control_timestep(self):
        return 1.0 / 20


class MethodTimestep(EightyHertz):
    """dm_control's ``control_timestep()`` is a method: not read as seconds."""

    control_period_s = None

    def control_timestep(self):
        return 0.05


def test_a_maniskill_style_control_timestep_is_read_through_wrappers_and_a_method_is_not():
    env = gym.wrappers.TimeLimit(ManiSkillLike(), max_episode_steps=50)
    assert control_period_s(env) == pytest.approx(0.05)
    with pytest.raises(ValueError, match=r"env.control_period_s=0.04 s but the env declares ManiSkillLike.control_timestep = 0.05 s"):
        control_period_s(env, 0.04)
    with pytest.raises(ValueError, match="cannot tell how many seconds one step"):
        control_period_s(MethodTimestep())


def test_an_unknown_or_contradicted_period_is_refused_naming_the_fix():
    cartpole = gym.make("CartPole-v1")  # steps at its own `tau`, declares no dt
    with pytest.raises(ValueError, match=r"add `control_period_s: <seconds per env step>` to the env group.*declare `dt`"):
        control_period_s(cartpole, env_name="CartPole-v1")
    assert control_period_s(cartpole, 0.02) == 0.02
    with pytest.raises(ValueError, match=r"env.control_period_s=0.0125 s but pick_place declares PickPlaceEnv.dt = 0.1 s"):
        control_period_s(envs.make_env("pick_place"), 0.0125, env_name="pick_place")
    with pytest.raises(ValueError, match="not a positive number of seconds"):
        control_period_s(cartpole, 0.0)


def test_an_env_without_a_period_is_named_by_its_own_class_not_a_wrapper_with_a_choice_for_a_discrete_time_model():
    car = gym.make("MountainCarContinuous-v0", max_episode_steps=200)  # a map from one step to the next: no duration
    with pytest.raises(ValueError) as err:
        control_period_s(car, env_name="MountainCarContinuous-v0")
    message = str(err.value)
    assert "one step of MountainCarContinuous-v0 (Continuous_MountainCarEnv) lasts" in message and "TimeLimit" not in message
    assert "no duration" in message and "1 gives every time in seconds in steps" in message
    assert control_period_s(car, 1) == 1.0


def test_a_cell_env_with_another_period_is_not_recorded_into_the_store(tmp_path):
    recorder = RolloutRecorder(tmp_path / "r.zarr", attrs={"control_period_s": 0.1})
    check_period(envs.make_env("pick_place"), recorder, "none", 0.0)
    with pytest.raises(ValueError, match=r"cell \(obstacle, 1\) declares EightyHertz.control_period_s = 0.0125 s .* own store"):
        check_period(EightyHertz(), recorder, "obstacle", 1.0)
    assert not (tmp_path / "r.zarr").exists()


class SubstepDt(gym.Env):
    """gym-pusht's PushTEnv: ``dt`` is its physics substep (0.01 s); each step runs 1 / (dt · control_hz) = 10 of them."""

    dt, control_hz = 0.01, 10
    observation_space = gym.spaces.Box(-1.0, 1.0, (2,))
    action_space = gym.spaces.Box(-1.0, 1.0, (2,))


class RobosuiteLike(SubstepDt):
    """robosuite's control rate is ``control_freq`` (Hz)."""

    dt, control_hz, control_freq = 0.002, None, 20


def test_a_control_rate_is_read_before_a_dt_that_is_the_physics_substep():
    env = gym.wrappers.TimeLimit(SubstepDt(), max_episode_steps=300)
    assert control_period_s(env) == pytest.approx(0.1)  # not the 0.01 s substep: warning times would be 10x short
    assert control_period_s(RobosuiteLike()) == pytest.approx(0.05)
    with pytest.raises(ValueError, match=r"env.control_period_s=0.01 s but the env declares 1 / SubstepDt.control_hz \(10 Hz\) = 0.1 s"):
        control_period_s(env, 0.01)


class GymHilLike(gym.Env):
    """lerobot's gym-hil (MujocoGymEnv): the period is a ``control_dt`` property (0.1 s), beside ``physics_dt`` (0.002 s)."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,))
    action_space = gym.spaces.Box(-1.0, 1.0, (4,))
    physics_dt = 0.002

    @property
    def control_dt(self):
        return 0.1


def test_a_gym_hil_style_control_dt_is_read_through_wrappers_and_a_contradiction_names_it():
    env = gym.wrappers.TimeLimit(GymHilLike(), max_episode_steps=100)
    assert control_period_s(env) == pytest.approx(0.1)  # not the 0.002 s physics step
    with pytest.raises(ValueError, match=r"env.control_period_s=0.05 s but the env declares GymHilLike.control_dt = 0.1 s"):
        control_period_s(env, 0.05)


class InnerMujoco:
    """The MuJoCo env a maze steps once per step (gymnasium-robotics' PointMaze: ``point_env``, dt 0.01 s)."""

    dt = 0.01


class MazeLike(gym.Env):
    """Declares no period of its own; holds the env it steps, which does."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (4,))
    action_space = gym.spaces.Box(-1.0, 1.0, (2,))

    def __init__(self):
        self.point_env = InnerMujoco()
        self.maze_size_scaling = 1.0


def test_an_env_without_a_period_names_the_one_an_inner_env_declares_and_the_env_group_fix():
    env = gym.wrappers.TimeLimit(MazeLike(), max_episode_steps=300)
    with pytest.raises(ValueError, match=r"add `control_period_s: <seconds per env step>` to the env group "
                                         r"\(\+\+env.control_period_s=<seconds> on the command line\).*"
                                         r"MazeLike.point_env: InnerMujoco.dt = 0.01 s is declared by an object the env holds"):
        control_period_s(env, env_name="PointMaze_UMaze-v3")
    assert control_period_s(env, 0.01) == 0.01  # never taken on its own: the outer env may step it several times


def test_an_env_holding_a_dm_control_environment_names_its_control_timestep():
    """gym-aloha's AlohaEnv declares no period and steps the dm_control environment it keeps as ``_env`` once per step;
    that environment's control_timestep() is a method, named in the message (never called to take the period)."""

    class Environment:  # dm_control.rl.control.Environment's shape: its period behind a method
        def control_timestep(self):
            return 0.02

    Environment.__module__ = "dm_control.rl.control"

    class AlohaLike(gym.Env):
        observation_space = gym.spaces.Box(-1.0, 1.0, (4,))
        action_space = gym.spaces.Box(-1.0, 1.0, (2,))

        def __init__(self):
            self._env = Environment()

    with pytest.raises(ValueError, match=r"AlohaLike._env: Environment.control_timestep\(\) = 0.02 s is declared by an "
                                         r"object the env holds: if one step of the env is one step of it, that is the period"):
        control_period_s(gym.wrappers.TimeLimit(AlohaLike(), max_episode_steps=300), env_name="gym_aloha/AlohaTransferCube-v0")
    Environment.__module__ = "my_pkg.sim"  # a method of that name on another object is not read
    with pytest.raises(ValueError, match=r"the env as gymnasium's MuJoCo envs do\. A model"):
        control_period_s(AlohaLike())
