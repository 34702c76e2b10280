"""The examples' `weak_arm` shift: the arm moves less than commanded, as a weak or slowed arm does."""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class WeakArm(gym.ActionWrapper):
    """The first ``entries`` action entries (the commanded hand motion) scaled by 1 - 0.7·severity; the others (rotation,
    fingers) as commanded."""

    def __init__(self, env: gym.Env, severity: float, entries: int = 3):
        super().__init__(env)
        self.gain, self.entries = 1.0 - 0.7 * float(severity), int(entries)

    def action(self, action):
        action = np.array(action, dtype=np.float32)
        action[..., : self.entries] *= self.gain
        return action
