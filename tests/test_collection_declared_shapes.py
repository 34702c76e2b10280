"""An env whose observations are not the shapes its observation space declares (gym-aloha 0.1.5 declares the
observation_width x observation_height it is given and renders 480 x 640) is named by the collection's summary."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from fiper.collection import collect
from fiper.env_io import declared_shapes
from fiper.storage import EpisodeStore


class Camera(gym.Env):
    """Declares a (8, 8, 3) camera under ``pixels.top`` and renders ``size``."""

    action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

    def __init__(self, size=(16, 12)):
        self.size = size
        self.observation_space = gym.spaces.Dict({"pixels": gym.spaces.Dict({"top": gym.spaces.Box(0, 255, (8, 8, 3), np.uint8)}),
                                                  "agent_pos": gym.spaces.Box(-1.0, 1.0, (2,), np.float64)})

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def _obs(self):
        return {"pixels": {"top": np.zeros((*self.size, 3), np.uint8)}, "agent_pos": np.zeros(2)}

    def step(self, action):
        self.t += 1
        return self._obs(), 0.0, self.t >= 3, False, {"is_success": self.t >= 3}


class Still:
    def reset(self, seed=None):
        pass

    def act(self, obs, info):
        return np.zeros(2, np.float32)


def test_observations_of_other_shapes_than_the_space_declares_are_named(tmp_path):
    assert declared_shapes(Camera().observation_space) == {"pixels.top": (8, 8, 3), "agent_pos": (2,)}
    assert declared_shapes(gym.spaces.Box(0, 1, (4,))) == {"obs": (4,)}
    summary = collect(Camera(), Still(), EpisodeStore.create(tmp_path / "a.zarr"), 1, progress=False)
    assert ("the env's observations are not the shapes its observation space declares (pixels.top (16, 12, 3) where it "
            "declares (8, 8, 3)); they are stored and trained on as observed") in str(summary)
    assert "fix it in the env factory" in str(summary)
    same = collect(Camera(size=(8, 8)), Still(), EpisodeStore.create(tmp_path / "b.zarr"), 1, progress=False)
    assert "observation space declares" not in str(same) and same.undeclared is None
