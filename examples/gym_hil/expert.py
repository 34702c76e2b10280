"""A scripted gym-hil PandaPickCube expert on the end-effector deltas: above the cube, down, close, lift.

Called by ``launch.collect expert=examples.gym_hil.expert:PickExpert`` as ``PickExpert(env)``; it reads the pinch
point (``agent_pos[15:18]``) and the cube (``environment_state``) from the observation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

OPEN, KEEP, CLOSE = 0.0, 1.0, 2.0   # gym-hil's gripper entry: 0 opens, 1 keeps, 2 closes
GAIN = 25.0                         # action per metre of error (one unit moves the target 0.025 m), clipped to [-1, 1]
HOVER, LIFT = 0.06, 0.15            # m above the cube before the descent; m above the table to lift it to
CLOSING_STEPS = 4


class PickExpert:
    """reset(seed) / act(obs, info) -> [dx, dy, dz, gripper]; ``strategy`` names the phase it is in."""

    def __init__(self, env=None):
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        self.phase, self.closing = "above", 0

    @property
    def strategy(self) -> str:
        return self.phase

    def act(self, obs: Mapping[str, np.ndarray], info: Mapping[str, Any]) -> np.ndarray:
        tcp, cube = np.asarray(obs["agent_pos"][15:18], float), np.asarray(obs["environment_state"], float)
        if self.phase == "above" and np.linalg.norm(tcp[:2] - cube[:2]) < 0.01 and abs(tcp[2] - cube[2] - HOVER) < 0.02:
            self.phase = "down"
        if self.phase == "down" and abs(tcp[2] - cube[2]) < 0.01:
            self.phase = "close"
        if self.phase == "close":
            self.closing += 1
            if self.closing > CLOSING_STEPS:
                self.phase = "lift"
        target, gripper = {"above": (cube + [0.0, 0.0, HOVER], OPEN), "down": (cube, OPEN), "close": (cube, CLOSE),
                           "lift": (np.array([cube[0], cube[1], LIFT]), CLOSE)}[self.phase]
        if self.phase == "close":
            target = tcp  # stand still while the fingers close
        return np.append(np.clip(GAIN * (target - tcp), -1.0, 1.0), gripper).astype(np.float32)
