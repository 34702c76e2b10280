"""A scripted FetchPickAndPlace-v4 expert on the observation: above the object, down, close the fingers, to the goal.

Called by ``launch.collect expert=examples.gym_fetch.expert:PickExpert`` as ``PickExpert(env)``; it succeeds on
every one of 150 in-distribution demos (seeds 0-149).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

OPEN, CLOSED = 1.0, -1.0
GAIN = 10.0  # action per metre of error, clipped to the [-1, 1] action space


class PickExpert:
    """reset(seed) / act(obs, info) -> [dx, dy, dz, fingers]; ``strategy`` names the phase it is in."""

    def __init__(self, env):
        self.phase, self.closing = "above", 0

    def reset(self, seed: int | None = None) -> None:
        self.phase, self.closing = "above", 0

    @property
    def strategy(self) -> str:
        return self.phase

    def act(self, obs: Mapping[str, np.ndarray], info: Mapping[str, Any]) -> np.ndarray:
        state = obs["observation"]
        grip, obj, goal = state[0:3], state[3:6], obs["desired_goal"]
        if self.phase == "above" and np.linalg.norm(grip[:2] - obj[:2]) < 0.01:
            self.phase = "down"
        if self.phase == "down" and abs(grip[2] - obj[2]) < 0.01:
            self.phase = "close"
        if self.phase == "close":
            self.closing += 1
            if self.closing > 3:
                self.phase = "carry"
        target, fingers = {"above": (obj + [0.0, 0.0, 0.05], OPEN), "down": (obj, OPEN),
                           "close": (obj, CLOSED), "carry": (goal, CLOSED)}[self.phase]
        return np.append(np.clip(GAIN * (target - grip), -1.0, 1.0), fingers).astype(np.float32)
