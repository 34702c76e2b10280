"""Push-T: push a T-shaped block to a fixed target pose with a cylindrical point pusher.

The diffusion-policy benchmark rebuilt in MuJoCo: the block (two boxes, free joint) slides on a
0.6 m x 0.6 m table; the pusher is a cylinder on two position-controlled slide joints.
Success: block centroid within POS_TOL of the target and heading within ANGLE_TOL.
"""

from __future__ import annotations

from collections.abc import Mapping
import math
from typing import Any

import numpy as np

from envs.base import TaskEnv
from envs.tasks.pusher import PointPusher
from envs.geometry import point_rect_distance, quat_yaw, rot2, yaw_quat

TARGET = np.array([0.0, 0.0, np.pi / 4])  # x, y, heading of the block centroid
TARGET_X, TARGET_Y, TARGET_T = TARGET.tolist()
POS_TOL = 0.015  # m
ANGLE_TOL = 0.12  # rad (about 7 degrees)
TIP_ANGLE = 0.35  # rad: block tilted further than this has tipped over
COS_TIP = math.cos(TIP_ANGLE)
NOMINAL_BOX = 0.16  # nominal initial block centroid |x|, |y| <= this ...
MIN_START_DIST = 0.14  # ... and at least this far from the target
OOD_BOX = 0.24  # init_pose shift at severity 1 reaches out to here
PUSHER_RADIUS = 0.015


class PushTEnv(PointPusher, TaskEnv):
    """Planar push of a T block to a target pose (see module docstring)."""

    task_name = "push_t"
    asset = "push_t.xml"
    default_max_steps = 300
    object_dim = 4
    object_bodies = ("block",)
    object_geoms = ("block_bar", "block_stem")
    obstacle_offset = 0.2  # the T sweeps a wide corridor when it turns
    push_window = (20, 60)
    push_speed = 1.2

    def _bind_model(self) -> None:
        m = self.model
        self._qpos = self.free_qpos("block")
        self._bind_pusher()
        self._block_body = m.body("block").id
        self._rect_geoms = [m.geom(g).id for g in self.object_geoms]
        if not hasattr(self, "_nominal_rects"):  # initial states are drawn with the nominal shape
            self._nominal_rects = (m.geom_pos[self._rect_geoms, :2].copy(), m.geom_size[self._rect_geoms, :2].copy())

    # ---- geometry read-outs (also used by the expert) -------------------------------------
    def block_pose(self) -> np.ndarray:
        """(x, y, heading) of the block centroid."""
        q = self.data.qpos[self._qpos : self._qpos + 7]
        return np.array([q[0], q[1], quat_yaw(q[3:7])])

    def block_rects(self, pose: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray, float]]:
        """(centre xy, half extents xy, heading) of each box of the block at ``pose``."""
        x, y, th = self.block_pose() if pose is None else pose
        R = rot2(th)
        return [(np.array([x, y]) + R @ self.model.geom_pos[g, :2], self.model.geom_size[g, :2].copy(), th) for g in self._rect_geoms]

    def block_distance(self, xy: np.ndarray, pose: np.ndarray | None = None) -> float:
        return min(point_rect_distance(xy, c, h, th) for c, h, th in self.block_rects(pose))

    def pose_error(self, pose: np.ndarray | None = None) -> tuple[float, float]:
        """(position error m, |heading error| rad) to the target."""
        x, y, th = (self.block_pose() if pose is None else pose).tolist()
        dth = (th - TARGET_T + math.pi) % (2 * math.pi) - math.pi
        return math.hypot(x - TARGET_X, y - TARGET_Y), abs(dth)

    # ---- task hooks -------------------------------------------------------------------
    def _sample_init(self, rng: np.random.Generator, ood: float) -> dict[str, Any]:
        lim = NOMINAL_BOX + ood * (OOD_BOX - NOMINAL_BOX)
        while True:
            xy = rng.uniform(-lim, lim, 2)
            outside = np.abs(xy).max() > NOMINAL_BOX
            if np.hypot(*(xy - TARGET[:2])) >= MIN_START_DIST and (ood == 0 or outside):
                break
        block = np.array([xy[0], xy[1], rng.uniform(-np.pi, np.pi)])
        while True:
            pusher = rng.uniform(-0.25, 0.25, 2)
            if self._block_distance_at(pusher, block) > PUSHER_RADIUS + 0.02:
                return {"block": block, "pusher": pusher}

    def _block_distance_at(self, xy: np.ndarray, pose: np.ndarray) -> float:
        """Distance from ``xy`` to the nominal-shaped block at ``pose`` (independent of shifts)."""
        x, y, th = pose
        R = rot2(th)
        return min(point_rect_distance(xy, np.array([x, y]) + R @ p, h, th) for p, h in zip(*self._nominal_rects))

    def _apply_init(self, init: Mapping[str, Any]) -> None:
        d, (x, y, th) = self.data, init["block"]
        half_height = self.model.geom_size[self._rect_geoms[0], 2]
        d.qpos[self._qpos : self._qpos + 7] = [x, y, half_height, *yaw_quat(th)]
        self._place_pusher(init["pusher"])

    def _object_obs(self) -> np.ndarray:
        x, y, th = self.block_pose()
        return np.array([x, y, np.sin(th), np.cos(th)])

    def task_success(self) -> bool:
        pos_err, ang_err = self.pose_error()
        return pos_err <= POS_TOL and ang_err <= ANGLE_TOL

    def irrecoverable_event(self) -> str:
        x, y, z = self.data.xpos[self._block_body].tolist()
        if max(abs(x), abs(y)) > self.table_half or z < -0.01:
            return "off_table"
        if self.data.xmat[self._block_body, 8] < COS_TIP:
            return "tipped_over"
        if self.obstacle_touched():
            return "obstacle_collision"
        return ""

    def obstacle_segments(self, init: Mapping[str, Any]) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(init["block"][:2], TARGET[:2])]

    def obstacle_clearance(self, xy: np.ndarray, init: Mapping[str, Any]) -> float:
        return min(
            self._block_distance_at(xy, init["block"]),
            self._block_distance_at(xy, TARGET),
            float(np.linalg.norm(xy - init["pusher"])) - PUSHER_RADIUS,
        )
