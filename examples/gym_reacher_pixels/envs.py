"""Env factories for gymnasium's Reacher-v5 seen through a camera: the state plus a top-down image, and one factory per shift.

The observation is gymnasium's own ``AddRenderObservation(render_only=False)``: a Dict of ``state`` (Reacher's flat
10-d vector) and ``pixels`` (``size`` × ``size`` × 3 uint8, rendered each step). Success is the flat example's
(``examples.gym_reacher.envs.ReachSuccess``). Each shift factory is called as ``f(severity=..., **env.kwargs)``.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium.wrappers import AddRenderObservation

from examples.gym_reacher.envs import ENV_ID, ArmStart, ReachSuccess, damp_joints
from fiper.env_factory import check_severity

TOP_DOWN = {"distance": 0.75, "elevation": -90.0, "azimuth": 90.0, "lookat": np.zeros(3), "trackbodyid": -1}


def _reacher(max_episode_steps: int = 50, success_radius: float = 0.02, size: int = 64) -> gym.Env:
    """Reacher-v5 rendering ``size`` px square from above (its default camera sees the arena from afar), with success."""
    try:
        env = gym.make(ENV_ID, max_episode_steps=int(max_episode_steps), render_mode="rgb_array", width=int(size), height=int(size),
                       default_camera_config=TOP_DOWN)
    except ModuleNotFoundError as err:  # gymnasium's MuJoCo envs import imageio for rendering
        raise ModuleNotFoundError(f"gymnasium's {ENV_ID} needs the package {err.name!r}: pip install 'fiper[image]'") from err
    return ReachSuccess(env, success_radius)


def make_reacher_pixels(max_episode_steps: int = 50, success_radius: float = 0.02, size: int = 64) -> gym.Env:
    """The nominal task: a Dict observation {'state': (10,), 'pixels': (size, size, 3) uint8}."""
    return AddRenderObservation(_reacher(max_episode_steps, success_radius, size), render_only=False)


def arm_start(severity: float = 0.0, **kwargs) -> gym.Env:
    """Shift: the arm starts outside the demonstrations' range (examples.gym_reacher.envs.ArmStart)."""
    severity = check_severity(severity, "arm_start")
    return AddRenderObservation(ArmStart(_reacher(**kwargs), severity), render_only=False)


def joint_damping(severity: float = 0.0, **kwargs) -> gym.Env:
    """Shift: a stiff arm (examples.gym_reacher.envs.damp_joints)."""
    return damp_joints(make_reacher_pixels(**kwargs), severity)


def ground_color(severity: float = 0.0, **kwargs) -> gym.Env:
    """Shift seen only in the image: the light-grey floor blended toward dark blue by ``severity``."""
    severity = check_severity(severity, "ground_color")
    env = make_reacher_pixels(**kwargs)
    model = env.unwrapped.model
    ground = model.geom("ground").id
    model.geom_rgba[ground, :3] = (1 - severity) * model.geom_rgba[ground, :3] + severity * np.array([0.15, 0.2, 0.5])
    return env
