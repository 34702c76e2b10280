"""Offscreen rendering with mujoco.Renderer, created lazily so low-dim use never touches GL."""

from __future__ import annotations

import functools

import mujoco
import numpy as np


@functools.cache
def gl_status() -> tuple[bool, str]:
    """(available, reason): whether an offscreen GL context can be created in this process.

    Set MUJOCO_GL=egl (headless GPU or Mesa) or MUJOCO_GL=osmesa before importing mujoco to
    choose a backend; envs sets MUJOCO_GL=egl itself on Linux without a display.
    """
    try:
        model = mujoco.MjModel.from_xml_string("<mujoco><worldbody><geom size='0.1'/></worldbody></mujoco>")
        renderer = mujoco.Renderer(model, 8, 8)
        renderer.close()
    except Exception as err:  # backends raise many types (ImportError, RuntimeError, GLError)
        return False, f"no offscreen OpenGL backend ({type(err).__name__}: {err}); set MUJOCO_GL=egl or osmesa"
    return True, "ok"


class Camera:
    """Renders one named camera of a model at a fixed size into uint8 (H, W, 3) arrays."""

    def __init__(self, model: mujoco.MjModel, camera: str, height: int, width: int):
        ok, reason = gl_status()
        if not ok:
            raise RuntimeError(f"cannot render images: {reason}")
        self.camera = camera
        self.model = model
        self._renderer = mujoco.Renderer(model, height, width)

    def render(self, data: mujoco.MjData) -> np.ndarray:
        self._renderer.update_scene(data, camera=self.camera)
        return self._renderer.render()

    def close(self) -> None:
        self._renderer.close()
