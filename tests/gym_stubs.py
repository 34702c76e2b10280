"""Small gymnasium envs and an expert the collection tests build on."""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class Push:
    def reset(self, seed=None):
        pass

    def act(self, obs, info):
        return np.array([1.0], np.float32)


class NestedArm(gym.Env):
    """A nested dict observation, as robosuite- or ManiSkill-style envs give it."""

    observation_space = gym.spaces.Dict({"robot": gym.spaces.Dict({"pos": gym.spaces.Box(-5, 5, (2,), np.float32),
                                                                    "vel": gym.spaces.Box(-5, 5, (2,), np.float32)}),
                                         "goal": gym.spaces.Box(-5, 5, (2,), np.float32)})
    action_space = gym.spaces.Box(-1, 1, (1,), np.float32)

    def _obs(self):
        return {"robot": {"pos": np.array([self.t, 0.0], np.float32), "vel": np.ones(2, np.float32)}, "goal": np.zeros(2, np.float32)}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        return self._obs(), 0.0, False, self.t >= 4, {"is_success": True}
