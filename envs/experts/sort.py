"""Scripted sorting expert: picks a random order of the two cubes, then pushes each into its bin
with greedy simulated-look-ahead pushes (see envs.experts.pusher).

Cost of a simulated push: distance of the active cube to an aim point inside its bin (drawn per
episode), plus a penalty for disturbing the other cube (large if it leaves its bin).
"""

from __future__ import annotations

import mujoco
import numpy as np

from envs.experts.planar import Circle, Rect
from envs.experts.pusher import GreedyPushExpert, touches
from envs.tasks.sort import BIN_HALF, BIN_MARGIN, BINS, COLORS

EDGE_SAFE = 0.25
DISTURB_WEIGHT = 0.5


class SortExpert(GreedyPushExpert):
    """Expert for :class:`envs.tasks.sort.SortEnv`."""

    def __init__(self, env, **kw):
        kw.setdefault("depth", 0.1)
        super().__init__(env, **kw)

    def _start_episode(self) -> None:
        self.order = [str(c) for c in self.rng.permutation(COLORS)]
        span = BIN_HALF - BIN_MARGIN - 0.03
        self.aim = {c: BINS[c] + self.rng.uniform(-span, span, 2) for c in COLORS}
        self._qpos = {c: self.env.free_qpos(c) for c in COLORS}

    def _describe_first(self, push) -> str:
        return " then ".join(self.order)

    def _active(self) -> str:
        return next((c for c in self.order if not self.env.in_bin(c)), self.order[-1])

    def _object(self) -> tuple[list[Rect], Circle]:
        c, h, th = self.env.cube_rect(self._active())
        return [(c, h, th)], (c, float(np.linalg.norm(h)) + self.pusher_radius + 0.01)

    def _avoid(self) -> list[Circle]:
        other = [c for c in COLORS if c != self._active()][0]
        c, h, _ = self.env.cube_rect(other)
        return [(c, float(np.linalg.norm(h)) + self.pusher_radius + 0.01), *super()._avoid()]

    def _cost(self, d: mujoco.MjData) -> float:
        if touches(d, self.env.obstacle_geom):
            return np.inf
        active = self._active()
        cost = 0.0
        for c in COLORS:
            xy = d.qpos[self._qpos[c] : self._qpos[c] + 2]
            edge = float(np.abs(xy).max()) - EDGE_SAFE
            cost += 10.0 * edge if edge > 0 else 0.0
            if c == active:
                cost += float(np.linalg.norm(xy - self.aim[c]))
            else:
                now = self.env.data.qpos[self._qpos[c] : self._qpos[c] + 2]
                cost += DISTURB_WEIGHT * float(np.linalg.norm(xy - now))
                if self.env.in_bin(c, now) and not self.env.in_bin(c, xy):
                    cost += 1.0
        return cost
