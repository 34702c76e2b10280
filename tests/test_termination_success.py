"""An env whose termination means success (gymnasium's MountainCarContinuous-v0: the car at the flag ends the episode,
its time limit truncates it, and its info is empty): fiper's default labels make every goal reached a failure
'terminated'; collection and the stress sweep say so naming fiper.wrappers.TerminationIsSuccess, which labels them."""

from __future__ import annotations

from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest

from fiper.collection import collect
from fiper.control.loop import run_episode
from fiper.control.sweep import SweepSummary, note_meta
from fiper.storage import EpisodeStore
from fiper.wrappers import TerminationIsSuccess

LIMIT = 200  # steps; the pumping expert reaches the flag in 80-110


def car(power_share: float = 1.0, wrapped: bool = True):
    env = gym.make("MountainCarContinuous-v0", max_episode_steps=LIMIT)
    env.unwrapped.power *= power_share
    return TerminationIsSuccess(env) if wrapped else env


class Pump:
    """Energy pumping: push along the velocity (toward the valley's far side from rest)."""

    def reset(self, seed=None):
        pass

    def act(self, obs, info):
        vel = float(obs[1])
        return np.array([np.sign(vel) if abs(vel) > 1e-4 else -1.0], np.float32)


def test_reaching_the_goal_is_a_success_and_the_time_limit_a_timeout(tmp_path):
    store = EpisodeStore.create(tmp_path / "car.zarr")
    summary = collect(car(), Pump(), store, 3, only_success=True, max_attempts=3, progress=False)
    assert summary.successes == 3 and list(store.meta("failure_reason")) == [""] * 3
    assert list(store.meta("failure_step")) == [-1] * 3 and max(store.episode_lengths) < LIMIT
    weak = EpisodeStore.create(tmp_path / "weak.zarr")  # a fifth of the engine: the car never reaches the flag
    collect(car(0.2), Pump(), weak, 2, progress=False)
    assert list(weak.meta("success")) == [False] * 2 and list(weak.meta("failure_reason")) == ["timeout"] * 2
    assert list(weak.meta("failure_step")) == [LIMIT - 1] * 2


def test_the_wrapper_refuses_an_env_that_says_success_itself():
    class Says(gym.Wrapper):
        def step(self, action):
            obs, reward, terminated, truncated, info = self.env.step(action)
            return obs, reward, terminated, truncated, {**info, "is_success": False}

    env = TerminationIsSuccess(Says(car(wrapped=False)))
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"already reports info\['is_success'\].*leave the wrapper out"):
        env.step(np.zeros(1, np.float32))


def test_collection_names_the_wrapper_when_episodes_terminate_without_saying_success(tmp_path):
    with pytest.raises(RuntimeError) as err:
        collect(car(wrapped=False), Pump(), EpisodeStore.create(tmp_path / "raw.zarr"), 2, only_success=True,
                max_attempts=3, progress=False)
    message = str(err.value)
    assert "3 'terminated'" in message and "3 of them ended terminated, not by the time limit" in message
    assert "fiper.wrappers.TerminationIsSuccess(env)" in message and "MountainCarContinuous-v0" in message
    assert "+env.wrappers=[\"fiper.wrappers:TerminationIsSuccess\"]" in message  # for a factory one does not write
    summary = collect(car(wrapped=False), Pump(), EpisodeStore.create(tmp_path / "all.zarr"), 2, progress=False)
    assert "all 2 stored as failures" in str(summary) and "TerminationIsSuccess" in str(summary)


def test_collection_does_not_name_the_wrapper_when_every_episode_ran_out_of_time(tmp_path):
    summary = collect(car(0.2, wrapped=False), Pump(), EpisodeStore.create(tmp_path / "t.zarr"), 2, progress=False)
    assert "said in none of the 2 attempts" in str(summary) and "TerminationIsSuccess" not in str(summary)


class PumpAgent:
    """What run_episode reads of a MonitoredPolicy, around the pumping expert: no decisions, no alarms."""

    def __init__(self):
        self.policy, self.history = SimpleNamespace(obs_shapes={"obs": (2,)}), SimpleNamespace(shapes={})
        self.decisions, self.last_info, self.expert = [], {}, Pump()

    def reset(self, seed=None):
        pass

    def bind_env(self, env):
        pass

    def act(self, obs):
        return self.expert.act(obs, {})


@pytest.mark.parametrize("wrapped", [False, True])
def test_the_stress_sweeps_summary_notes_rollouts_that_never_say_success(wrapped):
    summary = SweepSummary()
    for seed in range(2):
        result = run_episode(car(wrapped=wrapped), PumpAgent(), seed=seed)
        summary.add_episode(result, False, note_meta(result))
    table = summary.table()
    if wrapped:
        assert summary.rows[("none", 0.0)]["success"] == 2 and "note" not in table
    else:
        assert summary.rows[("none", 0.0)]["success"] == 0
        assert "note: no success can be counted: the env's info said in none of the 2 episodes run now" in table
        assert "2 of them ended terminated" in table and "fiper.wrappers.TerminationIsSuccess(env)" in table


def weak_car(severity: float = 0.0, **kwargs):
    """A shift's own factory, written without the wrapper: the env config's wrappers reach it too."""
    return car(1.0 - 0.5 * severity, wrapped=False)


def test_env_wrappers_in_the_config_wrap_every_env_it_builds_a_shifts_own_factorys_too():
    from fiper.env_factory import make_env_from_config
    from launch.stress import env_builder

    config = {"factory": "gymnasium:make", "kwargs": {"id": "MountainCarContinuous-v0", "max_episode_steps": LIMIT},
              "wrappers": ["fiper.wrappers:TerminationIsSuccess"]}
    for env in (make_env_from_config(config), env_builder(config, {"weak": f"{__name__}:weak_car"}, ["weak"])("weak", 0.5)):
        result = collect_one(env)
        assert result == (True, "")  # the flag reached, labelled a success by the config's wrapper
    with pytest.raises(ValueError, match=r"env.wrappers='fiper.wrappers:TerminationIsSuccess' is not a list"):
        make_env_from_config({**config, "wrappers": "fiper.wrappers:TerminationIsSuccess"})
    with pytest.raises(ValueError, match=r"module 'fiper.wrappers' has no attribute 'Nope'"):
        make_env_from_config({**config, "wrappers": ["fiper.wrappers:Nope"]})


def collect_one(env) -> tuple[bool, str]:
    """(success, failure_reason) of one expert episode on ``env``."""
    from fiper.collection import run_episode as expert_episode

    episode = expert_episode(env, Pump(), 0)
    env.close()
    return bool(episode.success), str(episode.failure_reason)


class Balance(gym.Env):
    """Lasting is the task: the episode terminates when the 'pole' (a counter pushed by the action) leaves [-3, 3]."""

    observation_space = gym.spaces.Box(-10, 10, (1,), np.float32)
    action_space = gym.spaces.Box(-1, 1, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x = 0.0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.x += float(action[0])
        return np.full(1, self.x, np.float32), 0.0, abs(self.x) > 3, False, {}


class Push:
    def __init__(self, force: float):
        self.force = force

    def reset(self, seed=None):
        pass

    def act(self, obs, info):
        return np.full(1, self.force, np.float32)


def test_time_limit_is_success_makes_lasting_a_success_and_a_fall_a_failure_at_its_step(tmp_path):
    from fiper.collection import run_episode as expert_episode
    from fiper.wrappers import TimeLimitIsSuccess

    env = TimeLimitIsSuccess(gym.wrappers.TimeLimit(Balance(), 10))
    kept, fell = expert_episode(env, Push(0.2), 0), expert_episode(env, Push(1.0), 0)
    assert (kept.success, kept.failure_reason) == (True, "")
    assert (fell.success, fell.failure_reason, fell.failure_step) == (False, "terminated", 3)
    unlabelled = gym.wrappers.TimeLimit(Balance(), 10)  # the same env saying nothing: its time limit is a 'timeout'
    summary = collect(unlabelled, Push(0.2), EpisodeStore.create(tmp_path / "b.zarr"), 3, progress=False)
    assert summary.timeouts() == 3 and summary.successes == 0
    assert "3 of them ran to the time limit" in str(summary) and '"fiper.wrappers:TimeLimitIsSuccess"' in str(summary)
    twice = TimeLimitIsSuccess(TerminationIsSuccess(gym.wrappers.TimeLimit(Balance(), 10)))
    twice.reset(seed=0)
    with pytest.raises(ValueError, match="already reports info\\['success'\\]; TimeLimitIsSuccess would replace it"):
        twice.step(np.zeros(1, np.float32))
