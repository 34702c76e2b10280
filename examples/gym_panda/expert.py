"""A scripted PandaPush-v3 expert on the observation: behind the cube on the side away from the goal, down, push.

Called by ``launch.collect expert=examples.gym_panda.expert:PushExpert`` as ``PushExpert(env)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from examples.push_script import PushGeometry, PushPhases, push_target

GAIN = 20.0       # action per metre of error: an action of 1 moves the end effector 0.05 m
BEHIND = 0.055    # m from the cube's centre to the fingertips' before a push (the cube's half side is 0.02)
HIGH, LOW = 0.08, 0.02  # m above the table: clear of the cube; level with its centre
DESCENT = 0.4     # the largest downward action: a faster descent overshoots its height by centimetres
CONTACT = 0.035   # m from the cube's centre to the end effector's while it pushes
ADVANCE = 0.03    # m the push target leads the contact point towards the goal
PUSH_SPEED = 0.5  # at most half the largest action while in contact, so the cube is pushed, not struck
OFF_LINE = 0.025  # m off the line behind the cube: go round again

GEOMETRY = PushGeometry(BEHIND, HIGH, LOW, CONTACT, ADVANCE, PUSH_SPEED, OFF_LINE)


class PushExpert(PushPhases):
    """reset(seed) / act(obs, info) -> [dx, dy, dz]; ``strategy`` names the phase it is in."""

    def act(self, obs: Mapping[str, np.ndarray], info: Mapping[str, Any]) -> np.ndarray:
        state = np.asarray(obs["observation"], dtype=float)
        ee, cube, goal = state[0:3], state[6:9], np.asarray(obs["desired_goal"], dtype=float)
        self.phase, target, limit = push_target(self.phase, ee, cube, goal, GEOMETRY)
        action = np.clip(GAIN * (target - ee), -limit, limit)
        action[2] = max(action[2], -DESCENT)
        return action.astype(np.float32)
