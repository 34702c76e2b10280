"""Offscreen rendering of one fixed camera, created lazily so low-dim use never touches GL.

One GL context lives as long as the camera; when an episode brings a recompiled model (a
shift), only the model-dependent render context and scene are rebuilt (a few ms instead of
the ~0.2 s of a fresh ``mujoco.Renderer``).
"""

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
        context = mujoco.GLContext(8, 8)
        context.make_current()
        context.free()
    except Exception as err:  # backends raise many types (AttributeError, RuntimeError, GLError)
        return False, f"no offscreen OpenGL backend ({type(err).__name__}: {err}); set MUJOCO_GL=egl or osmesa"
    return True, "ok"


class Camera:
    """Renders a named camera of the current model into uint8 (H, W, 3) arrays."""

    def __init__(self, model: mujoco.MjModel, camera: str, height: int, width: int):
        ok, reason = gl_status()
        if not ok:
            raise RuntimeError(f"cannot render images: {reason}")
        self.camera, self.height, self.width = camera, height, width
        self._gl = mujoco.GLContext(width, height)
        self._gl.make_current()
        self._rect = mujoco.MjrRect(0, 0, width, height)
        self._option = mujoco.MjvOption()
        self._pixels = np.empty((height, width, 3), dtype=np.uint8)
        self._context: mujoco.MjrContext | None = None
        self.set_model(model)

    def set_model(self, model: mujoco.MjModel) -> None:
        """Switch to another compile of the scene (same camera name)."""
        if model.vis.global_.offwidth < self.width or model.vis.global_.offheight < self.height:
            raise ValueError(f"model offscreen buffer {model.vis.global_.offwidth}x{model.vis.global_.offheight} is smaller than {self.width}x{self.height}")
        self._gl.make_current()
        if self._context is not None:
            self._context.free()
        self.model = model
        self._context = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_100)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._context)
        self._scene = mujoco.MjvScene(model, maxgeom=max(100, 2 * model.ngeom))
        self._cam = mujoco.MjvCamera()
        self._cam.type = mujoco.mjtCamera.mjCAMERA_FIXED
        self._cam.fixedcamid = model.camera(self.camera).id

    def render(self, data: mujoco.MjData) -> np.ndarray:
        self._gl.make_current()
        mujoco.mjv_updateScene(self.model, data, self._option, None, self._cam, mujoco.mjtCatBit.mjCAT_ALL, self._scene)
        mujoco.mjr_render(self._rect, self._scene, self._context)
        mujoco.mjr_readPixels(self._pixels, None, self._rect, self._context)
        return self._pixels[::-1].copy()  # OpenGL rows start at the bottom

    def close(self) -> None:
        if self._context is not None:
            self._gl.make_current()
            self._context.free()
            self._context = None
            self._gl.free()
