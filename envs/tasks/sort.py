"""Sort: push a red and a blue cube into the bin regions of their colour with a point pusher.

Bins are flat regions at the far side of the table (red left, blue right). A cube is sorted when
its centre lies inside its bin shrunk by BIN_MARGIN. Either cube may go first, so
demonstrations are multimodal in their order.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from envs.base import TaskEnv
from envs.tasks.pusher import PointPusher
from envs.geometry import point_rect_distance, quat_yaw, yaw_quat

COLORS = ("red", "blue")
BINS = {"red": np.array([-0.17, 0.17]), "blue": np.array([0.17, 0.17])}  # bin centres
BIN_HALF = 0.07
BIN_MARGIN = 0.01  # a cube's centre must be this far inside its bin
START_LOW, START_HIGH = np.array([-0.2, -0.2]), np.array([0.2, 0.0])  # nominal start region
OOD_LOW, OOD_HIGH = np.array([-0.27, -0.27]), np.array([0.27, 0.08])  # init_pose at severity 1
MIN_SEPARATION = 0.08
PUSHER_RADIUS = 0.015
CUBE_REACH = 0.03  # nominal cube centre-to-corner distance, rounded up


def _in_box(xy: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> bool:
    return bool(np.all(xy >= lo) and np.all(xy <= hi))


class SortEnv(PointPusher, TaskEnv):
    """Two-cube colour sorting by pushing (see module docstring)."""

    task_name = "sort"
    asset = "sort.xml"
    default_max_steps = 400
    object_dim = 8
    object_bodies = COLORS
    object_geoms = COLORS
    push_window = (30, 120)
    push_speed = 1.2

    def _bind_model(self) -> None:
        m = self.model
        self._qpos = {c: self.free_qpos(c) for c in COLORS}
        self._bind_pusher()
        self._body = {c: m.body(c).id for c in COLORS}
        self._geom = {c: m.geom(c).id for c in COLORS}

    # ---- read-outs (also used by the expert) ----------------------------------------------
    def cube_pose(self, color: str) -> np.ndarray:
        q = self.data.qpos[self._qpos[color] : self._qpos[color] + 7]
        return np.array([q[0], q[1], quat_yaw(q[3:7])])

    def cube_rect(self, color: str) -> tuple[np.ndarray, np.ndarray, float]:
        x, y, th = self.cube_pose(color)
        return np.array([x, y]), self.model.geom_size[self._geom[color], :2].copy(), th

    def in_bin(self, color: str, xy: np.ndarray | None = None) -> bool:
        x, y = (self.data.qpos[self._qpos[color] : self._qpos[color] + 2] if xy is None else xy).tolist()
        bx, by = BINS[color].tolist()
        lim = BIN_HALF - BIN_MARGIN
        return abs(x - bx) <= lim and abs(y - by) <= lim

    # ---- task hooks -------------------------------------------------------------------
    def _sample_init(self, rng: np.random.Generator, ood: float) -> dict[str, Any]:
        lo = START_LOW + ood * (OOD_LOW - START_LOW)
        hi = START_HIGH + ood * (OOD_HIGH - START_HIGH)
        cubes: dict[str, np.ndarray] = {}
        while len(cubes) < 2:
            xy = rng.uniform(lo, hi)
            if ood > 0 and _in_box(xy, START_LOW, START_HIGH):
                continue
            if any(np.linalg.norm(xy - o[:2]) < MIN_SEPARATION for o in cubes.values()):
                continue
            if any(point_rect_distance(xy, c, np.full(2, BIN_HALF), 0.0) < 0.03 for c in BINS.values()):
                continue  # out-of-range starts must not begin inside a bin
            cubes[COLORS[len(cubes)]] = np.array([xy[0], xy[1], rng.uniform(-np.pi, np.pi)])
        while True:
            pusher = rng.uniform([-0.25, -0.25], [0.25, 0.05])
            if all(np.linalg.norm(pusher - c[:2]) > 0.06 for c in cubes.values()):
                return {**cubes, "pusher": pusher}

    def _apply_init(self, init: Mapping[str, Any]) -> None:
        d = self.data
        for c in COLORS:
            x, y, th = init[c]
            a = self._qpos[c]
            d.qpos[a : a + 7] = [x, y, self.model.geom_size[self._geom[c], 2], *yaw_quat(th)]
        self._place_pusher(init["pusher"])

    def _object_obs(self) -> np.ndarray:
        """red x, y, blue x, y, then each cube's heading as sin 4θ, cos 4θ (a cube looks the same
        every quarter turn). The expert pushes at faces and corners, so without the heading the
        contact points it chooses are ambiguous to a policy."""
        q = self.data.qpos
        r, b = self._qpos["red"], self._qpos["blue"]
        th = [4.0 * self.cube_pose(c)[2] for c in COLORS]
        return np.array([q[r], q[r + 1], q[b], q[b + 1], np.sin(th[0]), np.cos(th[0]), np.sin(th[1]), np.cos(th[1])])

    def task_success(self) -> bool:
        return self.in_bin("red") and self.in_bin("blue")

    def irrecoverable_event(self) -> str:
        for c in COLORS:
            x, y, z = self.data.xpos[self._body[c]].tolist()
            if max(abs(x), abs(y)) > self.table_half or z < -0.01:
                return f"off_table:{c}"
        if self.obstacle_touched():
            return "obstacle_collision"
        return ""

    def obstacle_segments(self, init: Mapping[str, Any]) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(init[c][:2], BINS[c]) for c in COLORS]

    def obstacle_clearance(self, xy: np.ndarray, init: Mapping[str, Any]) -> float:
        cube = CUBE_REACH
        return min(
            *(float(np.linalg.norm(xy - init[c][:2])) - cube for c in COLORS),
            *(point_rect_distance(xy, b, np.full(2, BIN_HALF - BIN_MARGIN), 0.0) for b in BINS.values()),
            float(np.linalg.norm(xy - init["pusher"])) - PUSHER_RADIUS,
        )

