"""Scripted push-T expert: greedy simulated-look-ahead pushes (see envs.experts.pusher).

Candidates: contact points every 2 cm around the T's outline, strokes up to 6 cm deep. Cost:
position error + 0.08 m/rad x heading error, plus a penalty near the table edge.
"""

from __future__ import annotations

import mujoco
import numpy as np

from envs.experts.planar import Circle, Rect
from envs.experts.pusher import GreedyPushExpert, touches
from envs.geometry import quat_yaw
from envs.tasks.push_t import TIP_ANGLE

ANGLE_WEIGHT = 0.08  # m per rad (the 0.12 rad tolerance ~ 1 cm)
EDGE_SAFE = 0.21  # block centroid beyond this |x| or |y| is penalised (table half 0.3)
COS_SAFE_TILT = float(np.cos(TIP_ANGLE * 0.5))


class PushTExpert(GreedyPushExpert):
    """Expert for :class:`envs.tasks.push_t.PushTEnv`."""

    def _start_episode(self) -> None:
        self._qpos = self.env.free_qpos("block")
        self._body = self.env.model.body("block").id

    def _describe_first(self, push) -> str:
        rect, side = push.edge.split(":")
        return f"first push on {('bar', 'stem')[int(rect)]} {side}"

    def _object(self) -> tuple[list[Rect], Circle]:
        env = self.env
        x, y, _ = env.block_pose()
        rects = env.block_rects()
        reach = max(np.linalg.norm(c - [x, y]) + np.linalg.norm(h) for c, h, _ in rects)
        return rects, (np.array([x, y]), reach + self.pusher_radius + 0.01)

    def _cost(self, d: mujoco.MjData) -> float:
        if d.xmat[self._body, 8] < COS_SAFE_TILT or touches(d, self.env.obstacle_geom):
            return np.inf
        a = self._qpos
        x, y = float(d.qpos[a]), float(d.qpos[a + 1])
        pos_err, ang_err = self.env.pose_error(np.array([x, y, quat_yaw(d.qpos[a + 3 : a + 7])]))
        edge = max(abs(x), abs(y)) - EDGE_SAFE
        return pos_err + ANGLE_WEIGHT * ang_err + (10.0 * edge if edge > 0 else 0.0)
