"""Planar pushing toolkit for the point-pusher experts.

A push is a pre-contact point just outside an object's edge and a short straight stroke along
the edge's inward normal. Candidate pushes are scored by simulating them on a scratch copy of
the environment's own physics (a privileged look-ahead), and the pusher reaches the chosen
pre-contact point on a path that circles around objects instead of through them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import mujoco
import numpy as np

from envs.experts.base import straight
from envs.geometry import point_rect_distance, rot2, segment_point_distance

Rect = tuple[np.ndarray, np.ndarray, float]  # centre xy, half extents xy, heading
Circle = tuple[np.ndarray, float]  # centre xy, radius

APPROACH_GAP = 0.012  # pusher surface to object edge at the pre-contact point
PUSH_STEP = 0.02  # m per control step while pushing
MOVE_STEP = 0.04  # m per control step while travelling


@dataclass
class Push:
    pre: np.ndarray  # pre-contact pusher position
    normal: np.ndarray  # outward normal of the pushed edge
    stroke: list[np.ndarray]  # pusher targets of the push itself
    edge: str = ""  # which edge (see edge_contacts)


def edge_contacts(rects: list[Rect], pusher_radius: float, spacing: float) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """(contact point, outward normal, edge label) along the outline of a union of rectangles.

    The label names the rectangle and the side in its own frame, e.g. '0:+y'.
    Points inside another rectangle and pre-contact points that would overlap the object
    (inner corners of a T) are skipped.
    """
    out = []
    for i, (c, h, th) in enumerate(rects):
        R = rot2(th)
        for axis in (0, 1):
            for sign in (-1.0, 1.0):
                n_local = np.zeros(2)
                n_local[axis] = sign
                along = h[1 - axis]
                k = max(1, int(np.floor(2 * along / spacing)))
                for u in np.linspace(-along, along, k + 1):
                    local = n_local * h[axis]
                    local[1 - axis] = u
                    p, n = c + R @ local, R @ n_local
                    others = [r for j, r in enumerate(rects) if j != i]
                    if any(point_rect_distance(p, *r) < 1e-6 for r in others):
                        continue
                    pre = p + n * (pusher_radius + APPROACH_GAP)
                    if all(point_rect_distance(pre, *r) >= pusher_radius + 0.004 for r in rects):
                        out.append((p, n, f"{i}:{'+' if sign > 0 else '-'}{'xy'[axis]}"))
    return out


def make_push(contact: np.ndarray, normal: np.ndarray, depth: float, pusher_radius: float, edge: str = "") -> Push:
    pre = contact + normal * (pusher_radius + APPROACH_GAP)
    end = contact - normal * (depth - pusher_radius)
    return Push(pre=pre, normal=normal, stroke=straight(pre, end, PUSH_STEP), edge=edge)


def copy_data(dst: mujoco.MjData, model: mujoco.MjModel, src: mujoco.MjData) -> None:
    """mujoco.mj_copyData, which mujoco's Python bindings have from 3.5.0; before it, the integration state
    (everything mj_step reads: time, qpos, qvel, act, warmstart, controls, applied forces, mocap, ...)."""
    if hasattr(mujoco, "mj_copyData"):
        mujoco.mj_copyData(dst, model, src)
        return
    spec = mujoco.mjtState.mjSTATE_INTEGRATION
    state = np.empty(mujoco.mj_stateSize(model, spec))
    mujoco.mj_getState(model, src, state, spec)
    mujoco.mj_setState(model, dst, state, spec)


class Lookahead:
    """Simulates pushes on a scratch copy of an environment's physics."""

    def __init__(self, env, pusher_qpos: np.ndarray, pusher_dof: np.ndarray):
        self.env, self.qpos_idx, self.dof_idx = env, pusher_qpos, pusher_dof
        self._model, self._scratch = None, None

    def stroke_costs(self, push: Push, cost: Callable[[mujoco.MjData], float]) -> np.ndarray:
        """cost(state) after each point of the stroke, starting at rest at the pre-contact point.

        Entry k scores the shorter push that stops after stroke point k, so one simulation
        scores every stroke depth.
        """
        env = self.env
        if self._model is not env.model:
            self._model, self._scratch = env.model, mujoco.MjData(env.model)
        d = self._scratch
        copy_data(d, env.model, env.data)
        d.qpos[self.qpos_idx] = push.pre
        d.qvel[self.dof_idx] = 0.0
        out = np.empty(len(push.stroke))
        for k, target in enumerate(push.stroke):
            d.ctrl[:2] = target
            mujoco.mj_step(env.model, d, nstep=env.n_substeps)
            out[k] = cost(d)
        return out


def _radial_out(p: np.ndarray, circle: Circle) -> np.ndarray:
    c, r = circle
    v = p - c
    n = np.linalg.norm(v)
    return c + (v / n if n > 1e-9 else np.array([1.0, 0.0])) * r


def _arc(a: np.ndarray, b: np.ndarray, circle: Circle, step: float, longer: bool = False) -> list[np.ndarray]:
    """Points on the circle from the direction of a to the direction of b (the shorter way by default)."""
    c, r = circle
    ta, tb = np.arctan2(*(a - c)[::-1]), np.arctan2(*(b - c)[::-1])
    dt = (tb - ta + np.pi) % (2 * np.pi) - np.pi
    if longer:
        dt -= np.copysign(2 * np.pi, dt)
    n = max(1, int(np.ceil(abs(dt) * r / step)))
    return [c + r * np.array([np.cos(ta + dt * i / n), np.sin(ta + dt * i / n)]) for i in range(n + 1)]


def blocked(points: list[np.ndarray], circles: list[Circle]) -> bool:
    """Whether the polyline through ``points`` comes inside any circle (its first point excepted)."""
    for c, r in circles:
        inside_at_start = np.linalg.norm(points[0] - c) < r
        for i, (p, q) in enumerate(zip(points[:-1], points[1:])):
            if not (i == 0 and inside_at_start) and segment_point_distance(p, q, c) < r * 0.98:
                return True
    return False


def _crosses(points: list[np.ndarray], circles: list[Circle]) -> bool:
    return any(_first_hit(p, q, circles) >= 0 for p, q in zip(points[:-1], points[1:]))


def _first_hit(a: np.ndarray, b: np.ndarray, circles: list[Circle]) -> int:
    """Index of the circle the open segment a-b passes through (closest to a), or -1."""
    best, best_u = -1, np.inf
    d = b - a
    dd = float(d @ d)
    for i, (c, r) in enumerate(circles):
        if dd < 1e-12:
            continue
        u = float(np.clip((c - a) @ d / dd, 0.0, 1.0))
        if np.linalg.norm(a + u * d - c) < r * 0.98 and 0.0 < u < 1.0 and u < best_u:
            best, best_u = i, u
    return best


def route(start: np.ndarray, goal: np.ndarray, circles: list[Circle], step: float = MOVE_STEP, depth: int = 3) -> list[np.ndarray]:
    """Waypoints (spaced <= step) from start to goal that go around the given circles.

    The start may lie inside a circle (the pusher just finished a push): it leaves radially.
    """
    pts: list[np.ndarray] = []
    for circle in circles:
        if np.linalg.norm(start - circle[0]) < circle[1]:
            out = _radial_out(start, circle)
            pts += straight(start, out, step)
            start = out
    return pts + _detour(start, goal, circles, step, depth)


def _detour(a: np.ndarray, b: np.ndarray, circles: list[Circle], step: float, depth: int) -> list[np.ndarray]:
    i = _first_hit(a, b, circles) if depth > 0 else -1
    if i < 0:
        return straight(a, b, step)
    circle = (circles[i][0], circles[i][1] * 1.05)
    rest = [c for j, c in enumerate(circles) if j != i]
    arc = _arc(a, b, circle, step)
    if _crosses(arc, rest):  # the short way round runs into another circle: try the long way
        other = _arc(a, b, circle, step, longer=True)
        if not _crosses(other, rest):
            arc = other
    path = _detour(a, arc[0], rest, step, depth - 1)
    for p, q in zip(arc[:-1], arc[1:]):
        path += straight(p, q, step)
    return path + _detour(arc[-1], b, rest, step, depth - 1)


def entry_point(pre: np.ndarray, normal: np.ndarray, circle: Circle) -> np.ndarray:
    """The point on the push line (pre + L * normal, L >= 0) where it leaves ``circle``."""
    c, r = circle
    v = pre - c
    # |v + L n|^2 = r^2  ->  L^2 + 2 L (v.n) + |v|^2 - r^2 = 0
    b, cc = float(v @ normal), float(v @ v) - r * r
    disc = b * b - cc
    length = max(0.0, -b + np.sqrt(max(disc, 0.0)))
    return pre + normal * length


def choose(rng: np.random.Generator, costs: np.ndarray, current: float, slack: float) -> int:
    """A random index among the candidates within ``slack`` of the best improvement.

    With no finite cost at all (every push ends badly) any candidate is as good as another.
    """
    finite = np.isfinite(costs)
    if not finite.any():
        return int(rng.integers(len(costs)))
    best = float(costs[finite].min())
    gain = current - best if np.isfinite(current) and current > best else 0.0
    ok = np.flatnonzero(costs <= best + slack * gain + 1e-9)
    return int(rng.choice(ok))
