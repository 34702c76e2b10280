"""The point pusher shared by the planar tasks (push-T, sorting): x, y position targets in metres."""

from __future__ import annotations

import numpy as np


class PointPusher:
    """Mixin for a TaskEnv whose agent is a point pusher on slide joints ``pusher_x``, ``pusher_y``."""

    agent_dim, position_dims = 2, 2
    action_low, action_high = (-0.28, -0.28), (0.28, 0.28)
    action_doc = "pusher x, y target in metres"
    camera_name, camera_target, camera_up = "top", (0.0, 0.0, 0.0), (0.0, 1.0, 0.0)

    def _bind_pusher(self) -> None:
        m = self.model
        self._pusher_q = np.array([m.joint("pusher_x").qposadr[0], m.joint("pusher_y").qposadr[0]])

    def _place_pusher(self, xy) -> None:
        self.data.qpos[self._pusher_q] = xy
        self.data.ctrl[:2] = xy

    def _agent_obs(self) -> np.ndarray:
        return self.data.qpos[self._pusher_q]

    def _set_ctrl(self, action: np.ndarray) -> None:
        self.data.ctrl[:2] = action

    def agent_position(self) -> np.ndarray:
        return self.data.qpos[self._pusher_q].copy()

    def hold_action(self) -> np.ndarray:
        return self.agent_position()
