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
from envs.experts.planar import MOVE_STEP, Circle, Lookahead, Push, Rect, blocked, choose, edge_contacts, entry_point, make_push, route

TRAVEL_WEIGHT = 0.02  # cost per metre of travel to a pre-contact point
OBSTACLE_MARGIN = 0.015  # pushes leaving an object closer than this to the obstacle are ruled out


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
        return [(self.env.model.geom_pos[g, :2].copy(), float(self.env.model.geom_size[g, 0]) + self.pusher_radius + 0.02)]

    # ---- planning -------------------------------------------------------------------------
    def _score(self, d: mujoco.MjData) -> float:
        """The subclass cost, or inf when an object ends up within OBSTACLE_MARGIN of the obstacle."""
        g = self.env.obstacle_geom
        if g >= 0:
            for obj in self._object_geoms:
                if mujoco.mj_geomDistance(self.env.model, d, g, obj, OBSTACLE_MARGIN, None) < OBSTACLE_MARGIN:
                    return np.inf
        return self._cost(d)

    def _plan(self) -> list[np.ndarray]:
        pusher = self.env.agent_position()
        rects, circle = self._object()
        self._object_geoms = [self.env.model.geom(n).id for n in self.env.object_geoms]
        pushes: list[Push] = [
            make_push(p, n, self.depth, self.pusher_radius, edge)
            for p, n, edge in edge_contacts(rects, self.pusher_radius, self.spacing)
        ]
        costs = np.stack([self.look.stroke_costs(p, self._score) + TRAVEL_WEIGHT * np.linalg.norm(p.pre - pusher) for p in pushes])
        current, avoid = self._score(self.env.data), self._avoid()
        for _ in range(costs.size):
            flat = choose(self.rng, costs.ravel(), current, self.slack)
            push, k = pushes[flat // costs.shape[1]], flat % costs.shape[1]
            entry = entry_point(push.pre, push.normal, circle)
            stroke = push.stroke[: k + 1]
            path = route(pusher, entry, [circle, *avoid]) + straight(entry, push.pre, MOVE_STEP)
            path += [push.pre] + stroke + [stroke[-1] + push.normal * 0.02]
            if not avoid or not blocked([pusher, *path], avoid) or not np.isfinite(costs).any():
                break
            costs.flat[flat] = np.inf  # its way there or back runs into the obstacle: next best
        if not self.strategy:
            self.strategy = self._describe_first(push)
        return path


def touches(d: mujoco.MjData, geom: int) -> bool:
    """Whether ``geom`` is in any contact of ``d``."""
    return geom >= 0 and bool(d.ncon) and bool((d.contact.geom[: d.ncon] == geom).any())
