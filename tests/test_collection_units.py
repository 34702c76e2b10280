"""An expert commanding in other units than the env takes, inside the action space, is named by the collection."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from fiper.collection import action_span_share, collect
from fiper.storage import EpisodeStore


class PixelTarget(gym.Env):
    """A point driven to absolute pixel targets in [0, 512]^2 (as gym-pusht's agent): success within 5 px of a goal."""

    observation_space = gym.spaces.Box(0, 512, (4,), np.float32)
    action_space = gym.spaces.Box(0, 512, (2,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = self.np_random.uniform(100, 400, 2)
        self.goal = self.np_random.uniform(100, 400, 2)
        self.t = 0
        return self._obs(), {}

    def _obs(self):
        return np.concatenate([self.pos, self.goal]).astype(np.float32)

    def step(self, action):
        self.pos += 0.5 * (np.asarray(action, np.float64) - self.pos)
        self.t += 1
        done = bool(np.linalg.norm(self.pos - self.goal) < 5)
        return self._obs(), float(done), done, self.t >= 30, {"is_success": done}


class Expert:
    def __init__(self, scale: float):
        self.scale = scale  # 1: pixels, as the env takes them; 1/512: normalised, the mistake

    def reset(self, seed=None):
        pass

    def act(self, obs, info):
        return (obs[2:] * self.scale).astype(np.float32)


def test_an_expert_commanding_normalised_targets_in_a_pixel_space_is_named_and_one_in_pixels_is_not(tmp_path):
    wrong = collect(PixelTarget(), Expert(1 / 512), EpisodeStore.create(tmp_path / "wrong.zarr"), n_episodes=3, seed=0,
                    progress=False)
    assert wrong.successes == 0 and wrong.span_share < 0.01
    assert "the expert's actions span at most" in str(wrong) and "of the env's action range on every bounded entry" in str(wrong)
    assert "scale them in the expert" in str(wrong)
    right = collect(PixelTarget(), Expert(1.0), EpisodeStore.create(tmp_path / "right.zarr"), n_episodes=3, seed=0,
                    progress=False)
    assert right.successes == 3 and right.span_share > 0.3
    assert "action range" not in str(right)


def test_the_span_reads_only_entries_bounded_on_both_sides():
    box = gym.spaces.Box(np.array([-1.0, -np.inf, 0.0]), np.array([1.0, np.inf, 0.0]), dtype=np.float64)
    actions = np.zeros((20, 3))
    actions[:, 0] = np.linspace(-0.5, 0.5, 20)
    actions[:, 1] = np.linspace(-100, 100, 20)  # unbounded: not read
    assert action_span_share(actions, box) == 0.5  # the zero-width entry is not read either
    huge = gym.spaces.Box(-np.finfo(np.float32).max, np.finfo(np.float32).max, (3,), np.float32)  # "no bounds" spelled large
    assert action_span_share(actions, huge) is None
    assert action_span_share(actions, gym.spaces.Discrete(3)) is None


def test_a_collection_that_stores_too_few_episodes_ends_the_command_with_its_message(tmp_path):
    """The error naming why too few episodes were stored (here: the expert's units) ends launch.collect like every
    other error that names its fix, with the message and no traceback; it is still a RuntimeError to a caller."""
    from launch.validate import reported

    store = EpisodeStore.create(tmp_path / "demos.zarr")
    with pytest.raises(SystemExit, match=r"^error: only 0 of 2 episodes saved after 24 attempts \(0 successful\)"):
        with reported():
            collect(PixelTarget(), Expert(1 / 512), store, 2, only_success=True, progress=False)
    with pytest.raises(RuntimeError, match="only 0 of 2 episodes saved"):
        collect(PixelTarget(), Expert(1 / 512), EpisodeStore.create(tmp_path / "again.zarr"), 2, only_success=True, progress=False)


class Unlabelled(PixelTarget):
    """The same task written for reinforcement learning alone: a reward, no success in its info (dm_control's tasks)."""

    def step(self, action):
        obs, reward, _, truncated, _ = super().step(action)
        return obs, reward, False, truncated, {}


def test_storing_every_episode_of_an_env_that_never_says_success_notes_the_missing_label(tmp_path):
    """only_success=false stores the episodes of an env whose info never says whether one succeeded, each a failure:
    the summary says so and how to add the label, since the stages after collection need successes."""
    summary = collect(Unlabelled(), Expert(1.0), EpisodeStore.create(tmp_path / "raw.zarr"), 2, progress=False)
    assert summary.saved == 2 and summary.successes == 0
    assert ("; all 2 stored as failures: the env's info said in none of the 2 attempts whether the episode succeeded"
            in str(summary)), str(summary)
    assert "only_success=false" not in str(summary)
    labelled = collect(PixelTarget(), Expert(1.0), EpisodeStore.create(tmp_path / "labelled.zarr"), 2, progress=False)
    assert "said in none" not in str(labelled)
