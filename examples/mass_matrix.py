"""The dense joint-space mass matrix under both of mujoco's signatures of ``mj_fullM`` (the examples' experts cancel
inertia with it): recent releases take ``data``, earlier 3.x releases its sparse ``qM``."""

from __future__ import annotations

import mujoco
import numpy as np


def full_mass_matrix(model: mujoco.MjModel, data: mujoco.MjData, out: np.ndarray) -> np.ndarray:
    """Write the (nv, nv) mass matrix of ``data``'s state into ``out`` and return it."""
    try:
        mujoco.mj_fullM(model, data, out)
    except TypeError:  # mj_fullM(m, dst, M) of the 3.x releases fiper's floor admits
        mujoco.mj_fullM(model, out, data.qM)
    return out
