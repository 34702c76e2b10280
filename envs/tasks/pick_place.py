"""Pick and place: a Cartesian two-finger gripper picks a cube and places it in a low-walled bin.

Action: hand x, y, z position target (m) and a grip command in [0, 1] (0 open, 1 closed).
Success: the cube's centre inside the bin (inner walls shrunk by BIN_MARGIN, below the wall
top) with no finger touching it. Irrecoverable: cube off the table; cube dropped (after being
lifted, let go more than RELEASE_HEIGHT above the table) and landing outside the bin; anything
touching the obstacle of the obstacle shift. Setting the cube down on the table is not a drop.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from envs.base import TaskEnv
from envs.geometry import quat_yaw, yaw_quat

BIN_CENTER = np.array([0.15, 0.15])
BIN_INNER = 0.06  # half width of the bin's inside
BIN_MARGIN = 0.01
WALL_TOP = 0.04
FINGER_TRAVEL = 0.039  # finger joint range: 0 open ... FINGER_TRAVEL closed
LIFT_HEIGHT = 0.03  # cube raised this far above its rest height counts as lifted
RELEASE_HEIGHT = 0.01  # a cube let go higher than this above its rest height falls (a drop)
CUBE_LOW, CUBE_HIGH = np.array([-0.2, -0.2]), np.array([0.0, 0.0])  # nominal cube start
OOD_LOW, OOD_HIGH = np.array([-0.26, -0.26]), np.array([0.06, 0.06])  # init_pose at severity 1
YAW_RANGE, OOD_YAW = 0.4, 0.9  # cube heading range (rad), nominal and at severity 1
HAND_LOW, HAND_HIGH = np.array([-0.1, -0.1, 0.12]), np.array([0.1, 0.1, 0.18])


class PickPlaceEnv(TaskEnv):
    """Cube pick-and-place into a bin (see module docstring)."""

    task_name = "pick_place"
    asset = "pick_place.xml"
    default_max_steps = 150
    agent_dim, object_dim, position_dims = 4, 7, 3
    action_low, action_high = (-0.28, -0.28, 0.02, 0.0), (0.28, 0.28, 0.3, 1.0)
    action_doc = "hand x, y, z target in metres and grip in [0, 1] (0 open, 1 closed)"
    object_bodies = ("cube",)
    object_geoms = ("cube",)
    camera_name, camera_target, camera_up = "front", (0.0, 0.05, 0.05), (0.0, 0.0, 1.0)
    push_window = (12, 32)
    push_speed = 2.0

    def _bind_model(self) -> None:
        m = self.model
        self._qpos = self.free_qpos("cube")
        self._hand_q = slice(m.joint("hand_x").qposadr[0], m.joint("hand_x").qposadr[0] + 3)
        self._finger_q = [m.joint("finger_l").qposadr[0], m.joint("finger_r").qposadr[0]]
        self._cube_body, self._cube_geom = m.body("cube").id, m.geom("cube").id
        self._fingers = [m.geom("finger_l").id, m.geom("finger_r").id]
        self._lifted, self._rest_z, self._held_z = False, 0.0, 0.0

    # ---- read-outs (also used by the expert) ----------------------------------------------
    def cube_pos(self) -> np.ndarray:
        return self.data.qpos[self._qpos : self._qpos + 3].copy()

    def cube_yaw(self) -> float:
        return quat_yaw(self.data.qpos[self._qpos + 3 : self._qpos + 7])

    def cube_half(self) -> np.ndarray:
        return self.model.geom_size[self._cube_geom].copy()

    def grip_state(self) -> float:
        """Mean finger closure in [0, 1]."""
        q = self.data.qpos
        return (float(q[self._finger_q[0]]) + float(q[self._finger_q[1]])) / (2 * FINGER_TRAVEL)

    def cube_held(self) -> bool:
        return self.touching(self._cube_geom, self._fingers)

    def cube_in_bin(self) -> bool:
        x, y, z = self.data.qpos[self._qpos : self._qpos + 3].tolist()
        lim = BIN_INNER - BIN_MARGIN
        return abs(x - BIN_CENTER[0]) <= lim and abs(y - BIN_CENTER[1]) <= lim and z < WALL_TOP

    # ---- task hooks -------------------------------------------------------------------
    def _sample_init(self, rng: np.random.Generator, ood: float) -> dict[str, Any]:
        lo, hi = CUBE_LOW + ood * (OOD_LOW - CUBE_LOW), CUBE_HIGH + ood * (OOD_HIGH - CUBE_HIGH)
        while True:
            xy = rng.uniform(lo, hi)
            if ood == 0 or not np.all((xy >= CUBE_LOW) & (xy <= CUBE_HIGH)):
                break
        yaw_lim = YAW_RANGE + ood * (OOD_YAW - YAW_RANGE)
        if ood > 0:  # heading beyond the nominal range as well
            yaw = rng.choice([-1.0, 1.0]) * rng.uniform(YAW_RANGE, yaw_lim)
        else:
            yaw = rng.uniform(-YAW_RANGE, YAW_RANGE)
        return {"cube": np.array([xy[0], xy[1], yaw]), "hand": rng.uniform(HAND_LOW, HAND_HIGH)}

    def _apply_init(self, init: Mapping[str, Any]) -> None:
        d = self.data
        x, y, yaw = init["cube"]
        d.qpos[self._qpos : self._qpos + 7] = [x, y, self.model.geom_size[self._cube_geom, 2], *yaw_quat(yaw)]
        d.qpos[self._hand_q] = init["hand"]
        d.ctrl[:3] = init["hand"]
        d.ctrl[3:5] = 0.0
        self._rest_z = self._held_z = float(self.model.geom_size[self._cube_geom, 2])
        self._lifted = False

    def _agent_obs(self) -> np.ndarray:
        return np.append(self.data.qpos[self._hand_q], self.grip_state())

    def _object_obs(self) -> np.ndarray:
        q = self.data.qpos[self._qpos : self._qpos + 7].copy()
        if q[3] < 0:  # canonical quaternion sign
            q[3:] *= -1
        return q

    def _set_ctrl(self, action: np.ndarray) -> None:
        self.data.ctrl[:3] = action[:3]
        self.data.ctrl[3:5] = action[3] * FINGER_TRAVEL

    def agent_position(self) -> np.ndarray:
        return self.data.qpos[self._hand_q].copy()

    def hold_action(self) -> np.ndarray:
        return np.append(self.agent_position(), self.data.ctrl[3] / FINGER_TRAVEL)

    def task_success(self) -> bool:
        return self.cube_in_bin() and not self.cube_held()

    def irrecoverable_event(self) -> str:
        """Also tracks whether the cube was lifted and where it was last held (called once per step)."""
        x, y, z = self.data.qpos[self._qpos : self._qpos + 3].tolist()
        if max(abs(x), abs(y)) > self.table_half or z < -0.01:
            return "off_table"
        if z > self._rest_z + LIFT_HEIGHT:
            self._lifted = True
        if self.cube_held():
            self._held_z = z
        # let go in the air: its last held height was above the table (setting it down is no drop)
        falling = self._held_z > self._rest_z + RELEASE_HEIGHT
        if self._lifted and falling and z < self._rest_z + 0.005 and not self.cube_in_bin():
            return "dropped"
        if self.obstacle_touched():
            return "obstacle_collision"
        return ""

    def obstacle_segments(self, init: Mapping[str, Any]) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(init["cube"][:2], BIN_CENTER)]

    def obstacle_clearance(self, xy: np.ndarray, init: Mapping[str, Any]) -> float:
        bin_dist = float(np.max(np.abs(xy - BIN_CENTER))) - (BIN_INNER + 0.005)
        hand_dist = float(np.linalg.norm(xy - init["hand"][:2])) - 0.06  # palm and fingers reach 6 cm
        return min(float(np.linalg.norm(xy - init["cube"][:2])) - 0.05, bin_dist, hand_dist)

    def obstacle_height(self, severity: float) -> float:
        return 0.05 + 0.15 * severity
