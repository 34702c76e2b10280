"""A scripted gym-xarm XarmLift expert on the end-effector deltas: above the cube, down, close, lift.

Called by ``launch.collect expert=examples.gym_xarm.expert:LiftExpert`` as ``LiftExpert(env)``; it reads the gripper's
grasp point (``obs[0:3]``) and the cube (``obs[6:9]``) from gym-xarm's 28-d state observation, both relative to the
table's centre.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

OPEN, CLOSE = -1.0, 1.0      # gym-xarm's gripper entry: -1 opens, 1 closes
GAIN = 40.0                  # action per metre of error, clipped to [-1, 1]
HOVER, LIFT = 0.05, 0.3      # m above the cube before the descent; m above the cube to lift towards
CLOSING_STEPS = 8            # steps standing still while the fingers close


class LiftExpert:
    """reset(seed) / act(obs, info) -> [dx, dy, dz, gripper]; ``strategy`` names the phase it is in."""

    def __init__(self, env=None, closing_steps: int = CLOSING_STEPS):
        self.closing_steps = int(closing_steps)
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        self.phase, self.closing, self.lift_z = "above", 0, 0.0

    @property
    def strategy(self) -> str:
        return self.phase

    def act(self, obs: Any, info: Mapping[str, Any]) -> np.ndarray:
        obs = np.asarray(obs["obs"] if isinstance(obs, Mapping) else obs, float)
        grasp, cube = obs[0:3], obs[6:9]
        if self.phase == "above" and np.linalg.norm(grasp[:2] - cube[:2]) < 0.01 and abs(grasp[2] - cube[2] - HOVER) < 0.02:
            self.phase = "down"
        if self.phase == "down" and abs(grasp[2] - cube[2]) < 0.01:
            self.phase, self.lift_z = "close", cube[2] + LIFT
        if self.phase == "close":
            self.closing += 1
            if self.closing > self.closing_steps:
                self.phase = "lift"
        target, gripper = {"above": (cube + [0.0, 0.0, HOVER], OPEN), "down": (cube, OPEN), "close": (grasp, CLOSE),
                           "lift": (np.array([grasp[0], grasp[1], self.lift_z]), CLOSE)}[self.phase]
        return np.append(np.clip(GAIN * (target - grasp), -1.0, 1.0), gripper).astype(np.float32)
