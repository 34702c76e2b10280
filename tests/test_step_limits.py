"""Time limits: an env that never ends, one that declares no limit, and the limits fiper reads as declared (a
TimeLimit, dm_control's own under shimmy, robosuite's horizon)."""

from __future__ import annotations

import gymnasium as gym
import pytest

import envs
from fiper.collection import collect, run_episode
from fiper.storage import EpisodeStore
from gym_stubs import NestedArm, Push


def test_an_env_that_never_ends_is_an_error_naming_the_time_limit():
    class Endless(NestedArm):
        def step(self, action):
            obs, reward, *_ = super().step(action)
            return obs, reward, False, False, {}

    with pytest.raises(ValueError, match=r"seed 4 ran 6 steps without ending; give the env a time limit in its factory "
                                         r"\(gymnasium.wrappers.TimeLimit"):
        run_episode(Endless(), Push(), seed=4, max_steps=6)


def test_an_env_declaring_no_time_limit_is_named_in_the_summary_with_a_limit_to_give(tmp_path):
    """NestedArm ends its episodes itself but declares no limit: the summary says what a never-ending policy episode
    would cost and suggests a TimeLimit from the demos' length; the same env under a TimeLimit, and fiper's own
    tasks, carry no such note."""
    from fiper.env_factory import declared_step_limit

    bare = collect(NestedArm(), Push(), EpisodeStore.create(tmp_path / "bare.zarr"), n_episodes=2, seed=0)
    assert bare.step_limit is None and bare.longest == 4
    assert ("the env declares no time limit, so a policy's episode that does not end stops its rollouts only after 100,000 "
            "steps, with an error") in str(bare) and "a few times the longest demo's 4 steps" in str(bare)
    limited = collect(gym.wrappers.TimeLimit(NestedArm(), max_episode_steps=20), Push(),
                      EpisodeStore.create(tmp_path / "limited.zarr"), n_episodes=2, seed=0)
    assert limited.step_limit == 20 and "time limit" not in str(limited)
    assert declared_step_limit(envs.make_env("push_t", max_episode_steps=33)) == 33



def test_a_dm_control_envs_own_time_limit_counts_as_declared(tmp_path):
    """shimmy's bindings keep the dm_control environment as ``_env``, whose time limit (``_step_limit`` steps, a float;
    a composer environment's ``_time_limit`` seconds) ends every episode as truncated: no note asks for a TimeLimit."""
    from fiper.env_factory import declared_step_limit

    class DmEnv:  # dm_control's rl.control.Environment and composer.Environment keep their limits so
        def __init__(self, step_limit=None, time_limit=None):
            self._step_limit, self._time_limit = step_limit, time_limit

        def control_timestep(self):
            return 0.02

    class Shimmied(NestedArm):  # shimmy's DmControlCompatibilityV0 keeps the dm_control env as `_env`
        def __init__(self, dm_env):
            self._env = dm_env

    assert declared_step_limit(Shimmied(DmEnv(step_limit=4.0))) == 4
    assert declared_step_limit(Shimmied(DmEnv(time_limit=0.08))) == 4
    assert declared_step_limit(Shimmied(DmEnv(step_limit=float("inf")))) is None  # dm_control's "no limit"
    summary = collect(Shimmied(DmEnv(step_limit=4.0)), Push(), EpisodeStore.create(tmp_path / "dm.zarr"), n_episodes=2, seed=0)
    assert summary.step_limit == 4 and "time limit" not in str(summary)


def test_a_robosuite_envs_horizon_counts_as_declared():
    """robosuite's GymWrapper keeps the robosuite env as ``env``; its ``horizon`` ends every episode unless
    ``ignore_done`` is set, in which case it declares nothing."""
    from fiper.env_factory import declared_step_limit

    class Robosuite:  # robosuite.environments.base.MujocoEnv keeps both as attributes
        def __init__(self, ignore_done):
            self.horizon, self.ignore_done = 7, ignore_done

    class Wrapped(NestedArm):
        def __init__(self, env):
            self.env = env

    assert declared_step_limit(Wrapped(Robosuite(ignore_done=False))) == 7
    assert declared_step_limit(Wrapped(Robosuite(ignore_done=True))) is None
