"""Visual shift families (image observations only): lighting, colours, camera pose.

They edit only rendering properties, so low-dim observations and physics stay nominal.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import mujoco
import numpy as np

from envs.geometry import look_at_quat
from envs.shifts.base import Shift, register_shift


@register_shift
class Lighting(Shift):
    name = "lighting"
    description = ("scene light dimmed or brightened by 1 +/- 0.6*severity, tinted per channel by "
                   "up to 30 %*severity, key light moved sideways by 0.5*severity m")
    expected = "benign"
    edits_model = True
    image_only = True

    def edit_spec(self, spec: mujoco.MjSpec, init: Mapping[str, Any]) -> None:
        s, rng = self.severity, self.rng
        gain = 1.0 + float(rng.choice([-1.0, 1.0])) * 0.6 * s
        tint = 1.0 + 0.3 * s * rng.uniform(-1, 1, 3)
        move = rng.normal(size=2)
        move *= 0.5 * s / np.linalg.norm(move)
        self.params.update(gain=gain, tint=tint.tolist(), move=move.tolist())
        for light in spec.lights:
            light.diffuse = np.clip(np.asarray(light.diffuse) * gain * tint, 0, 1)
            light.pos = np.asarray(light.pos) + np.array([move[0], move[1], 0.0])
        head = spec.visual.headlight
        head.ambient = np.clip(np.asarray(head.ambient) * gain * tint, 0, 1)
        head.diffuse = np.clip(np.asarray(head.diffuse) * gain * tint, 0, 1)


@register_shift
class Colors(Shift):
    name = "colors"
    description = ("table and floor colours blended toward random colours by severity; object "
                   "colours jittered by up to 0.15*severity per channel (hues stay recognisable)")
    expected = "benign"
    edits_model = True
    image_only = True

    def edit_spec(self, spec: mujoco.MjSpec, init: Mapping[str, Any]) -> None:
        s = self.severity
        for name in ("table", "floor"):
            self._set(spec, name, lambda rgb: (1 - s) * rgb + s * self.rng.uniform(0, 1, 3))
        for name in self.env.object_geoms:
            self._set(spec, name, lambda rgb: np.clip(rgb + 0.15 * s * self.rng.uniform(-1, 1, 3), 0, 1))

    def _set(self, spec: mujoco.MjSpec, name: str, change) -> None:
        g = spec.geom(name)
        rgba = np.asarray(g.rgba, float).copy()
        rgba[:3] = change(rgba[:3])
        g.rgba = rgba
        self.params[name] = rgba.tolist()


@register_shift
class Camera(Shift):
    name = "camera"
    description = ("observation camera moved by 0.12*severity m in a random direction, re-aimed at "
                   "the same point of the table, and rolled by up to 0.3*severity rad")
    expected = "graded"
    edits_model = True
    image_only = True

    def edit_spec(self, spec: mujoco.MjSpec, init: Mapping[str, Any]) -> None:
        cam = spec.camera(self.env.camera_name)
        move = self.rng.normal(size=3)
        move *= 0.12 * self.severity / np.linalg.norm(move)
        roll = float(self.rng.uniform(-1, 1)) * 0.3 * self.severity
        pos = np.asarray(cam.pos, float) + move
        target, up = np.asarray(self.env.camera_target, float), np.asarray(self.env.camera_up, float)
        forward = (target - pos) / np.linalg.norm(target - pos)
        up = np.cos(roll) * up + np.sin(roll) * np.cross(forward, up)  # roll about the view axis
        cam.pos = pos
        cam.quat = look_at_quat(pos, target, up)
        cam.alt.type = mujoco.mjtOrientation.mjORIENTATION_QUAT
        self.params.update(move=move.tolist(), roll=roll)
