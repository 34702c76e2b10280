"""Physical shift families: initial pose, object size and shape, mass, friction, obstacle, push."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import mujoco
import numpy as np

from envs.shifts.base import Shift, register_shift


def _sign(rng: np.random.Generator) -> float:
    return float(rng.choice([-1.0, 1.0]))


def _scale_object_geoms(spec: mujoco.MjSpec, names, scale) -> None:
    """Scale each object geom's size and its offset in the body frame (scalar or per axis)."""
    for name in names:
        g = spec.geom(name)
        g.size = np.asarray(g.size) * scale
        g.pos = np.asarray(g.pos) * scale


@register_shift
class InitPose(Shift):
    name = "init_pose"
    description = ("initial object pose drawn outside the training range: positions from a band "
                   "around the nominal region whose width grows with severity (up to the table edge), "
                   "and, where the task limits it, heading beyond its nominal range")
    expected = "graded"

    def init_pose_ood(self) -> float:
        return self.severity


@register_shift
class ObjectSize(Shift):
    name = "object_size"
    description = "object geoms scaled uniformly by 1 +/- 0.4*severity (grow or shrink, chosen per seed)"
    expected = "graded"
    edits_model = True

    def edit_spec(self, spec: mujoco.MjSpec, init: Mapping[str, Any]) -> None:
        k = 1.0 + _sign(self.rng) * 0.4 * self.severity
        self.params["scale"] = k
        _scale_object_geoms(spec, self.env.object_geoms, k)


@register_shift
class ObjectShape(Shift):
    name = "object_shape"
    description = ("object geoms stretched along one horizontal body axis by 1 + 0.6*severity and "
                   "squeezed along the other by the inverse (area kept; a cube becomes a bar)")
    expected = "graded"
    edits_model = True

    def edit_spec(self, spec: mujoco.MjSpec, init: Mapping[str, Any]) -> None:
        a = 1.0 + 0.6 * self.severity
        axis = int(self.rng.integers(2))
        scale = np.ones(3)
        scale[axis], scale[1 - axis] = a, 1.0 / a
        self.params.update(stretch_axis="xy"[axis], stretch=a)
        _scale_object_geoms(spec, self.env.object_geoms, scale)


@register_shift
class Mass(Shift):
    name = "mass"
    description = "object mass multiplied by 1 + 4*severity (up to 5x heavier)"
    expected = "graded"
    edits_model = True

    def edit_spec(self, spec: mujoco.MjSpec, init: Mapping[str, Any]) -> None:
        k = 1.0 + 4.0 * self.severity
        self.params["factor"] = k
        for name in self.env.object_geoms:
            g = spec.geom(name)
            if np.isnan(g.mass):  # mass from density
                g.density = g.density * k
            else:
                g.mass = g.mass * k


@register_shift
class Friction(Shift):
    name = "friction"
    description = ("friction of every surface multiplied by 4**(+/-severity): slippery (down to 1/4) "
                   "or sticky (up to 4x), chosen per seed")
    expected = "graded"
    edits_model = True

    def edit_spec(self, spec: mujoco.MjSpec, init: Mapping[str, Any]) -> None:
        k = float(4.0 ** (_sign(self.rng) * self.severity))
        self.params["factor"] = k
        for g in spec.geoms:
            g.friction = np.asarray(g.friction) * k


@register_shift
class Obstacle(Shift):
    name = "obstacle"
    description = ("a static cylinder near the straight path from an object's start to its goal: "
                   "lateral offset (1-severity) times the task's obstacle offset (push_t 0.2 m, others 0.12 m; "
                   "on the path at 1, or the nearest clear point where the "
                   "start or goal footprint is in the way), radius 0.012 + 0.018*severity m, in pick-and-place "
                   "height 0.05 + 0.15*severity m; touching it is a failure")
    expected = "graded"
    edits_model = True

    def edit_spec(self, spec: mujoco.MjSpec, init: Mapping[str, Any]) -> None:
        s, env, rng = self.severity, self.env, self.rng
        segments = env.obstacle_segments(init)
        p0, p1 = (np.asarray(p, float) for p in segments[int(rng.integers(len(segments)))])
        frac, side = float(rng.uniform(0.35, 0.65)), _sign(rng)
        radius, height = 0.012 + 0.018 * s, env.obstacle_height(s)
        xy = self._place(p0, p1, frac, side * env.obstacle_offset * (1.0 - s), radius, init)
        self.params.update(xy=xy.tolist(), radius=radius, height=height, segment=[p0.tolist(), p1.tolist()])
        spec.worldbody.add_geom(
            name="obstacle", type=mujoco.mjtGeom.mjGEOM_CYLINDER, size=[radius, height / 2, 0],
            pos=[xy[0], xy[1], height / 2], rgba=[0.2, 0.2, 0.2, 1], contype=1, conaffinity=2,
            margin=0.002, gap=0.002,  # reports contacts within 2 mm without pushing back earlier
        )

    def obstacles(self) -> list[dict[str, Any]]:
        if "xy" not in self.params:
            return []
        p = self.params
        return [{"center": [*p["xy"], 0.0], "radius": p["radius"], "height": p["height"], "shape": "cylinder"}]

    def _place(self, p0: np.ndarray, p1: np.ndarray, frac: float, offset: float, radius: float, init) -> np.ndarray:
        """The clear table point nearest to the requested one (clear of start and goal footprints)."""
        d = p1 - p0
        normal = np.array([-d[1], d[0]]) / max(np.linalg.norm(d), 1e-9)
        want = p0 + frac * d + normal * offset
        limit = self.env.table_half - radius - 0.01
        axis = np.arange(-limit, limit + 1e-9, 0.01)
        grid = np.stack(np.meshgrid(axis, axis), -1).reshape(-1, 2)
        for xy in grid[np.argsort(np.linalg.norm(grid - want, axis=1), kind="stable")]:
            if self.env.obstacle_clearance(xy, init) >= radius + 0.01:
                return xy
        raise RuntimeError(f"{self.env.task_name}: no clear place for an obstacle of radius {radius:.3f} on the table")


@register_shift
class Push(Shift):
    name = "push"
    description = ("an external push mid-episode: at a step drawn from the task's push window, one "
                   "object gets a horizontal velocity kick of severity * the task's push speed in a "
                   "random direction and a spin of severity * 4 rad/s")
    expected = "graded"

    def on_reset(self) -> None:
        lo, hi = self.env.push_window
        self.step_at = int(self.rng.integers(lo, hi + 1))
        body = str(self.rng.choice(list(self.env.object_bodies)))
        angle = float(self.rng.uniform(0.0, 2 * np.pi))
        speed = self.severity * self.env.push_speed
        self.kick = np.array([np.cos(angle), np.sin(angle)]) * speed
        self.spin = _sign(self.rng) * 4.0 * self.severity
        self.dof = self.env.free_dof(body)
        self.params.update(step=self.step_at, body=body, velocity=self.kick.tolist(), spin=self.spin)

    def before_physics(self, t: int) -> None:
        if t == self.step_at:
            qvel = self.env.data.qvel
            qvel[self.dof : self.dof + 2] += self.kick  # free joint: world-frame linear velocity
            qvel[self.dof + 5] += self.spin  # body-frame angular z (objects rest flat)
