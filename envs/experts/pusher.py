"""Greedy look-ahead pushing expert shared by the point-pusher tasks (push-T, sort).

Each cycle: list candidate pushes on the object being moved (contact points along its outline,
strokes up to ``depth`` past the edge), simulate each once on a scratch copy of the physics
(scoring every stroke length on the way), pick at random among the (push, length) pairs nearly
as good as the best (multimodal side and contact point), then travel around objects to the
pre-contact point, push, back off by 2 cm.
Subclasses define which object is pushed, the cost of a simulated outcome, and what to avoid.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any

import mujoco
import numpy as np

from envs.experts.base import WaypointFollower, straight
from envs.experts.planar import MOVE_STEP, Circle, Lookahead, Push, Rect, choose, edge_contacts, entry_point, make_push, route

TRAVEL_WEIGHT = 0.02  # cost per metre of travel to a pre-contact point


class GreedyPushExpert(abc.ABC):
    pusher_radius: float = 0.015

    def __init__(self, env, *, noise: float = 0.002, slack: float = 0.3, depth: float = 0.06, spacing: float = 0.02):
        self.env = env.unwrapped
        self.noise, self.slack, self.depth, self.spacing = noise, slack, depth, spacing
        self.rng = np.random.default_rng()
        self.follower = WaypointFollower(noise)

    def reset(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)
        self.follower.clear()
        m = self.env.model
        q = np.array([m.joint("pusher_x").qposadr[0], m.joint("pusher_y").qposadr[0]])
        v = np.array([m.joint("pusher_x").dofadr[0], m.joint("pusher_y").dofadr[0]])
        self.look = Lookahead(self.env, q, v)
        self.strategy = ""  # the episode's mode, for measuring multimodality
        self._start_episode()

    def act(self, obs: Mapping[str, np.ndarray], info: Mapping[str, Any]) -> np.ndarray:
        if not len(self.follower):
            self.follower.extend(self._plan())
        return self.follower.pop(self.rng)

    # ---- subclass hooks -------------------------------------------------------------------
    def _start_episode(self) -> None:
        """Per-episode random choices (e.g. the sorting order)."""

    @abc.abstractmethod
    def _object(self) -> tuple[list[Rect], Circle]:
        """Rectangles of the object to push now and a circle enclosing it with clearance."""

    @abc.abstractmethod
    def _cost(self, d: mujoco.MjData) -> float:
        """Cost of a (simulated) physics state; np.inf for states to avoid at any price."""

    def _describe_first(self, push: Push) -> str:
        return f"first push {push.edge}"

    def _avoid(self) -> list[Circle]:
        """Circles (besides the pushed object) the pusher travels around."""
        g = self.env.obstacle_geom
        if g < 0:
            return []
        return [(self.env.model.geom_pos[g, :2].copy(), float(self.env.model.geom_size[g, 0]) + self.pusher_radius + 0.01)]

    # ---- planning -------------------------------------------------------------------------
    def _plan(self) -> list[np.ndarray]:
        pusher = self.env.agent_position()
        rects, circle = self._object()
        pushes: list[Push] = [
            make_push(p, n, self.depth, self.pusher_radius, edge)
            for p, n, edge in edge_contacts(rects, self.pusher_radius, self.spacing)
        ]
        costs = np.stack([self.look.stroke_costs(p, self._cost) + TRAVEL_WEIGHT * np.linalg.norm(p.pre - pusher) for p in pushes])
        flat = choose(self.rng, costs.ravel(), self._cost(self.env.data), self.slack)
        push, k = pushes[flat // costs.shape[1]], flat % costs.shape[1]
        if not self.strategy:
            self.strategy = self._describe_first(push)
        entry = entry_point(push.pre, push.normal, circle)
        path = route(pusher, entry, [circle, *self._avoid()]) + straight(entry, push.pre, MOVE_STEP)
        stroke = push.stroke[: k + 1]
        return path + [push.pre] + stroke + [stroke[-1] + push.normal * 0.02]


def touches(d: mujoco.MjData, geom: int) -> bool:
    """Whether ``geom`` is in any contact of ``d``."""
    return geom >= 0 and bool(d.ncon) and bool((d.contact.geom[: d.ncon] == geom).any())
