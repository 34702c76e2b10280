"""Observation noise for the examples' `obs_noise` shifts: Gaussian, drawn from a generator seeded by the episode's
seed, so a seed fixes the noise as it fixes the rest of the episode (the outcome sweep compares runs seed by seed)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class SeededObservationNoise(gym.ObservationWrapper):
    """Adds noise of std ``std`` to the observation, or to its entry ``key`` of a dict observation (the other entries,
    such as a goal, are left exact); ``dtype`` casts the noisy values back (float32 where the env emits float32)."""

    def __init__(self, env: gym.Env, std: float, key: str | None = None, dtype: type | None = None):
        super().__init__(env)
        self.std, self.key, self.dtype = float(std), key, dtype
        self.rng = np.random.default_rng(0)

    def reset(self, *, seed=None, options=None):
        self.rng = np.random.default_rng(None if seed is None else [int(seed), 11])
        return super().reset(seed=seed, options=options)

    def _noisy(self, values):
        noisy = values + self.rng.normal(0.0, self.std, np.shape(values))
        return noisy if self.dtype is None else noisy.astype(self.dtype)

    def observation(self, observation):
        if self.key is None:
            return self._noisy(observation)
        return {**observation, self.key: self._noisy(observation[self.key])}
