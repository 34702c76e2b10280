"""A scripted PandaPush-v3 expert on the observation: behind the cube on the side away from the goal, down, push.

Called by ``launch.collect expert=examples.gym_panda.expert:PushExpert`` as ``PushExpert(env)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

GAIN = 20.0       # action per metre of error: an action of 1 moves the end effector 0.05 m
BEHIND = 0.055    # m from the cube's centre to the fingertips' before a push (the cube's half side is 0.02)
HIGH, LOW = 0.08, 0.02  # m above the table: clear of the cube; level with its centre
DESCENT = 0.4     # the largest downward action: a faster descent overshoots its height by centimetres
CONTACT = 0.035   # m from the cube's centre to the end effector's while it pushes
ADVANCE = 0.03    # m the push target leads the contact point towards the goal
PUSH_SPEED = 0.5  # at most half the largest action while in contact, so the cube is pushed, not struck
OFF_LINE = 0.025  # m off the line behind the cube: go round again


class PushExpert:
    """reset(seed) / act(obs, info) -> [dx, dy, dz]; ``strategy`` names the phase it is in."""

    def __init__(self, env):
        self.phase = "behind"

    def reset(self, seed: int | None = None) -> None:
        self.phase = "behind"

    @property
    def strategy(self) -> str:
        return self.phase

    def act(self, obs: Mapping[str, np.ndarray], info: Mapping[str, Any]) -> np.ndarray:
        state = np.asarray(obs["observation"], dtype=float)
        ee, cube, goal = state[0:3], state[6:9], np.asarray(obs["desired_goal"], dtype=float)
        to_goal = goal[:2] - cube[:2]
        direction = to_goal / max(np.linalg.norm(to_goal), 1e-6)
        start = cube[:2] - BEHIND * direction  # where a push towards the goal starts
        offset = ee[:2] - cube[:2]
        lateral = abs(direction[0] * offset[1] - direction[1] * offset[0])
        behind = -(offset @ direction)  # > 0: the end effector is on the far side of the cube from the goal
        if self.phase == "push" and (lateral > OFF_LINE or behind < 0.01):
            self.phase = "behind"
        if self.phase == "behind" and np.linalg.norm(ee[:2] - start) < 0.01:
            self.phase = "down"
        if self.phase == "down" and ee[2] < LOW + 0.01:
            self.phase = "push"
        if self.phase == "behind":
            if ee[2] < HIGH - 0.02 and np.linalg.norm(offset) < BEHIND + 0.03:
                target = np.append(ee[:2], HIGH)  # low beside the cube: rise before going round it
            else:
                target = np.append(start, HIGH)
            limit = 1.0
        elif self.phase == "down":
            target, limit = np.append(start, LOW), 1.0
        else:  # to the contact point behind the cube (which corrects a sideways offset), and on towards the goal
            advance = min(ADVANCE, float(np.linalg.norm(to_goal)))
            target, limit = np.append(cube[:2] - CONTACT * direction + advance * direction, LOW), PUSH_SPEED
        action = np.clip(GAIN * (target - ee), -limit, limit)
        action[2] = max(action[2], -DESCENT)
        return action.astype(np.float32)
