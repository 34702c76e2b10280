"""Env factories for gymnasium-robotics' FetchPickAndPlace-v4: the nominal task and one factory per shift.

The env is taken as it comes: a dict observation (``observation``, ``achieved_goal``, ``desired_goal``), 4 actions
(the gripper's Cartesian motion and its fingers) in [-1, 1], ``info['is_success']``, 50-step episodes that success
does not end. Needs gymnasium-robotics with mujoco < 3.12 (its Fetch fails to build under later mujoco, 4
included, which fiper installs), so the suite does not run it; the README says how it was run.
"""

from __future__ import annotations

import gymnasium as gym

from examples.seeded_noise import SeededObservationNoise
from examples.weak_arm import WeakArm
from fiper.env_factory import check_severity

ENV_ID = "FetchPickAndPlace-v4"


def make_fetch(render_mode: str | None = None, **kwargs) -> gym.Env:
    try:
        import gymnasium_robotics
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(f"{ENV_ID} needs gymnasium-robotics: pip install gymnasium-robotics 'mujoco<3.12' in an "
                                  "environment of its own (examples/gym_fetch/README.md)") from err
    gym.register_envs(gymnasium_robotics)
    return gym.make(ENV_ID, render_mode=render_mode, **kwargs)


def weak_arm(severity: float, render_mode: str | None = None, **kwargs) -> gym.Env:
    severity = check_severity(severity, "weak_arm")  # before the env is built
    return WeakArm(make_fetch(render_mode, **kwargs), severity)


def obs_noise(severity: float, render_mode: str | None = None, **kwargs) -> gym.Env:
    severity = check_severity(severity, "obs_noise")
    return SeededObservationNoise(make_fetch(render_mode, **kwargs), 0.01 * severity, key="observation")


def wide_start(severity: float, render_mode: str | None = None, **kwargs) -> gym.Env:
    """The object starts up to 0.15 + 0.1·severity m from the gripper (0.15 in distribution)."""
    severity = check_severity(severity, "wide_start")
    env = make_fetch(render_mode, **kwargs)
    env.unwrapped.obj_range = 0.15 + 0.1 * severity
    return env


def heavy(severity: float, render_mode: str | None = None, **kwargs) -> gym.Env:
    """The object weighs 1 + 9·severity times its mass."""
    severity = check_severity(severity, "heavy")
    env = make_fetch(render_mode, **kwargs)
    inner = env.unwrapped
    inner.model.body_mass[inner.model.body("object0").id] *= 1.0 + 9.0 * severity
    return env
