"""Observation keys a store cannot hold under their own name ('/' nests arrays in zarr) are refused before anything is
written, naming the key and the fix; keys with '/' or '.' that it can hold read back under the same names."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from fiper.collection import collect
from fiper.env_factory import SetupError
from fiper.storage import EpisodeStore
from fiper.storage.errors import StoreError
from gym_stubs import Push


class Keyed(gym.Env):
    """A flat dict observation under the given keys, entry i holding i + t; four steps, then success."""

    action_space = gym.spaces.Box(-1, 1, (1,), np.float32)

    def __init__(self, keys):
        self.keys = list(keys)

    def _obs(self):
        return {k: np.array([i + self.t, 0.5], np.float64) for i, k in enumerate(self.keys)}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        return self._obs(), 0.0, self.t >= 4, False, {"is_success": self.t >= 4}


@pytest.mark.parametrize("keys, bad, why", [
    (["cam", "cam/depth"], "cam/depth", "lies below the name 'cam'"),
    (["a//b", "c"], "a//b", "has an empty path segment"),
    (["/a", "c"], "/a", "has an empty path segment"),
    (["a/", "c"], "a/", "has an empty path segment"),
    (["", "c"], "", "is empty"),
    (["..", "c"], "..", "has a '.' or '..' path segment"),
])
def test_a_key_the_store_cannot_hold_stops_collection_before_anything_is_written(tmp_path, keys, bad, why):
    store = EpisodeStore.create(tmp_path / "s.zarr")
    env = Keyed(keys)
    with pytest.raises(SetupError) as raised:
        collect(env, Push(), store, n_episodes=2, progress=False)
    message = str(raised.value)
    assert message.startswith(f"the env's observation key {bad!r} {why}")
    assert "rename it in the env factory (gymnasium.wrappers.TransformObservation)" in message
    reopened = EpisodeStore.open(tmp_path / "s.zarr")
    assert reopened.n_episodes == 0 and reopened.data_keys == []


def test_the_store_refuses_such_a_name_itself_and_keeps_appending_after_it(tmp_path):
    store = EpisodeStore.create(tmp_path / "s.zarr")
    good = {"obs": np.ones((3, 2)), "action": np.zeros((3, 1), np.float32)}
    store.append_episode(good, meta={"success": True})
    with pytest.raises(StoreError, match=r"data key 'obs//x' has an empty path segment.*nothing was written"):
        store.append_episode({**good, "obs//x": np.ones((3, 2))}, meta={"success": True})
    with pytest.raises(StoreError, match=r"meta key 'a/b' lies below the name 'a'"):
        store.append_episode(good, meta={"success": True, "a": 1, "a/b": 2})
    store.append_episode({"obs": np.full((2, 2), 7.0), "action": np.ones((2, 1), np.float32)}, meta={"success": False})
    reopened = EpisodeStore.open(tmp_path / "s.zarr")
    assert reopened.n_episodes == 2 and reopened.data_keys == ["action", "obs"]
    np.testing.assert_array_equal(reopened.episode(1)["obs"], np.full((2, 2), 7.0))


def test_keys_with_slashes_and_dots_read_back_under_the_same_names(tmp_path):
    store = EpisodeStore.create(tmp_path / "s.zarr")
    keys = ["robot/arm.pos.xy", "robot/arm.cell", "goal.xy"]
    collect(Keyed(keys), Push(), store, n_episodes=1, progress=False)
    reopened = EpisodeStore.open(tmp_path / "s.zarr")
    assert sorted(reopened.data_keys) == sorted(["action", *keys])
    for i, key in enumerate(keys):
        np.testing.assert_array_equal(reopened.read_data(key)[:, 0], i + np.arange(4))
