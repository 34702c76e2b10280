"""Scripted pick-and-place expert: a waypoint script with randomly chosen strategies.

Strategies drawn per episode: the grasp approach (straight down onto the cube, or down beside
it at +/-6 cm along y and then sliding in between the open fingers), the carrying height (low
or high arc) and the release point inside the bin; every waypoint is jittered. If a grasp
misses (the cube does not rise with the hand) or holds the cube by the pads' edges, it opens and
tries again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from envs.experts.base import WaypointFollower, straight
from envs.tasks.pick_place import BIN_CENTER

GRASP_Z = 0.075  # hand height whose finger tips clear the table by 5 mm
MOVE_STEP, VERTICAL_STEP = 0.04, 0.03
SIDE_OFFSET = 0.06
LOW_CARRY, HIGH_CARRY = (0.145, 0.165), (0.19, 0.23)  # hand heights; the cube clears the bin walls
AIM_SPREAD = np.array([0.005, 0.02])
CENTRED = 0.01  # a grasp more than this off the pads' centre line (y) is redone  # release point spread (x is tight: open fingers span 10 cm)
OPEN, CLOSED = 0.0, 1.0


class PickPlaceExpert:
    """Expert for :class:`envs.tasks.pick_place.PickPlaceEnv`."""

    def __init__(self, env, *, noise: float = 0.0015):
        self.env = env.unwrapped
        self.follower = WaypointFollower(noise)
        self.rng = np.random.default_rng()

    def reset(self, seed: int | None = None) -> None:
        self.rng = rng = np.random.default_rng(seed)
        self.approach = str(rng.choice(["top", "side+", "side-"]))
        self.safe_z = float(rng.uniform(0.11, 0.14))
        self.carry_z = float(rng.choice([rng.uniform(*LOW_CARRY), rng.uniform(*HIGH_CARRY)]))
        self.aim = BIN_CENTER + rng.uniform(-1, 1, 2) * AIM_SPREAD
        self.phase = "pick"
        self.follower.clear()
        arc = "low" if self.carry_z < HIGH_CARRY[0] else "high"
        self.strategy = f"{self.approach} grasp, {arc} carry"  # the episode's mode

    def act(self, obs: Mapping[str, np.ndarray], info: Mapping[str, Any]) -> np.ndarray:
        if not len(self.follower):
            self._next_phase()
        return self.follower.pop(self.rng)

    def _next_phase(self) -> None:
        env = self.env
        hand = env.agent_position()
        if self.phase == "pick":
            self.follower.extend(self._pick(hand))
            self.phase = "check"
        elif self.phase == "check":
            centred = abs(env.cube_pos()[1] - hand[1]) < CENTRED
            if env.cube_pos()[2] > env.cube_half()[2] + 0.015 and env.cube_held() and centred:
                self.follower.extend(self._place(hand))
                self.phase = "done"
            else:  # missed, or held by the pads' edges: set down, open, rise, try again
                down = np.array([hand[0], hand[1], max(GRASP_Z, env.cube_half()[2] + 0.055)])
                pts = self._line(hand, down, CLOSED, VERTICAL_STEP) + [np.append(down, OPEN)] * 2
                self.follower.extend(pts + self._line(down, down + [0, 0, 0.05], OPEN, VERTICAL_STEP))
                self.phase = "pick"
        else:
            self.follower.extend([np.append(hand, OPEN)])

    def _line(self, a: np.ndarray, b: np.ndarray, grip: float, step: float) -> list[np.ndarray]:
        return [np.append(p, grip) for p in straight(a, b, step)]

    def _pick(self, hand: np.ndarray) -> list[np.ndarray]:
        env = self.env
        cube = env.cube_pos()
        grasp = np.array([cube[0], cube[1], max(GRASP_Z, cube[2] + 0.03)]) + np.append(self.rng.normal(0, 0.003, 2), 0)
        if self.approach == "top":
            low = grasp
        else:
            sign = 1.0 if self.approach == "side+" else -1.0
            low = grasp + [0.0, sign * (SIDE_OFFSET + env.cube_half()[1] - 0.02), 0.0]
        up = max(self.safe_z, hand[2])
        pts = self._line(hand, [hand[0], hand[1], up], OPEN, VERTICAL_STEP)
        pts += self._line([hand[0], hand[1], up], [low[0], low[1], up], OPEN, MOVE_STEP)
        pts += self._line([low[0], low[1], up], low, OPEN, VERTICAL_STEP)
        if self.approach != "top":
            pts += self._line(low, grasp, OPEN, 0.02)
        pts += [np.append(grasp, OPEN)] + [np.append(grasp, CLOSED)] * 4
        return pts + self._line(grasp, grasp + [0, 0, 0.04], CLOSED, VERTICAL_STEP)

    def _place(self, hand: np.ndarray) -> list[np.ndarray]:
        env = self.env
        release_z = GRASP_Z + 0.012 + max(0.0, 2 * env.cube_half()[2] - 0.04)
        above = np.array([self.aim[0], self.aim[1], self.carry_z])
        pts = self._line(hand, [hand[0], hand[1], self.carry_z], CLOSED, VERTICAL_STEP)
        pts += self._line([hand[0], hand[1], self.carry_z], above, CLOSED, MOVE_STEP)
        low = np.array([self.aim[0], self.aim[1], release_z])
        pts += self._line(above, low, CLOSED, VERTICAL_STEP)
        pts += [np.append(low, CLOSED)] + [np.append(low, OPEN)] * 3
        return pts + self._line(low, low + [0, 0, 0.06], OPEN, VERTICAL_STEP)
