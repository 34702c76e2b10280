"""A scripted PushCube-v1 expert on the observation: behind the cube on the side away from the goal, down, push.

Called by ``launch.collect expert=examples.maniskill_push.expert:PushExpert`` as ``PushExpert(env)``. The observation
is ManiSkill's 35-d state vector (``CPUGymWrapper``): the tool centre point's position at 18:21, the goal's at 25:28,
the cube's at 28:31. Actions are ``pd_ee_delta_pos``: the tool centre point's displacement, 0.1 m per unit, then the
fingers (-1: closed, a solid pusher).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from examples.push_script import PushGeometry, PushPhases, push_target

TCP, GOAL, CUBE = slice(18, 21), slice(25, 28), slice(28, 31)
GAIN = 10.0       # action per metre of error: an action of 1 moves the tool centre point 0.1 m
BEHIND = 0.06     # m from the cube's centre to the tool centre point before a push (the cube's half side is 0.02)
HIGH, LOW = 0.08, 0.02  # m above the table: clear of the cube; level with its centre
CONTACT = 0.035   # m from the cube's centre to the tool centre point while it pushes
ADVANCE = 0.05    # m the push target leads the contact point towards the goal
PUSH_SPEED = 0.4  # at most 0.04 m per step while in contact, so the cube is pushed, not struck
OFF_LINE = 0.025  # m off the line behind the cube: go round again
CLOSED = -1.0     # the fingers' command

GEOMETRY = PushGeometry(BEHIND, HIGH, LOW, CONTACT, ADVANCE, PUSH_SPEED, OFF_LINE)


class PushExpert(PushPhases):
    """reset(seed) / act(obs, info) -> [dx, dy, dz, fingers]; ``strategy`` names the phase it is in."""

    def act(self, obs: np.ndarray, info: Mapping[str, Any]) -> np.ndarray:
        state = np.asarray(obs, dtype=float)
        tcp, cube, goal = state[TCP], state[CUBE], state[GOAL]
        self.phase, target, limit = push_target(self.phase, tcp, cube, goal, GEOMETRY)
        move = np.clip(GAIN * (target - tcp), -limit, limit)
        return np.append(move, CLOSED).astype(np.float32)
