"""A scripted Lift expert on the observation: above the cube, down, close the fingers, lift.

Called by ``launch.collect expert=examples.robosuite_lift.expert:LiftExpert`` as ``LiftExpert(env)``. Its actions are
robosuite's default Panda controller's, in delta mode: the hand's motion (5 cm per unit per step, clipped to [-1, 1]),
its rotation (held at 0) and the fingers (-1 open, 1 closed).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

OPEN, CLOSED = -1.0, 1.0
GAIN = 10.0           # action per metre of error: 1 (5 cm per step) from 10 cm away
ABOVE = 0.06          # m above the cube's centre before going down
CLOSE_STEPS = 8       # steps with the fingers closing before lifting
LIFT = 0.12           # m above the grasp height the hand goes to


class LiftExpert:
    """reset(seed) / act(obs, info) -> 7 actions; ``strategy`` names the phase it is in."""

    def __init__(self, env=None):
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        self.phase, self.closing, self.grasp_z = "above", 0, None

    @property
    def strategy(self) -> str:
        return self.phase

    def act(self, obs: Mapping[str, np.ndarray], info: Mapping[str, Any]) -> np.ndarray:
        hand = np.asarray(obs["robot0_eef_pos"], float)
        cube = np.asarray(obs["cube_pos"] if "cube_pos" in obs else obs["object-state"][:3], float)  # robomimic's keys
        if self.phase == "above" and np.linalg.norm(hand[:2] - cube[:2]) < 0.01 and abs(hand[2] - cube[2] - ABOVE) < 0.02:
            self.phase = "down"
        if self.phase == "down" and np.linalg.norm(hand - cube) < 0.01:
            self.phase, self.grasp_z = "close", hand[2]
        if self.phase == "close":
            self.closing += 1
            if self.closing > CLOSE_STEPS:
                self.phase = "lift"
        if self.phase == "above":
            target, fingers = cube + [0.0, 0.0, ABOVE], OPEN
        elif self.phase == "down":
            target, fingers = cube, OPEN
        elif self.phase == "close":
            target, fingers = hand, CLOSED
        else:
            target, fingers = np.array([hand[0], hand[1], self.grasp_z + LIFT]), CLOSED
        motion = np.clip(GAIN * (target - hand), -1.0, 1.0)
        return np.concatenate([motion, np.zeros(3), [fingers]]).astype(np.float32)
