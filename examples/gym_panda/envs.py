"""Env factories for panda-gym's PandaPush-v3 (PyBullet): the nominal task and one factory per shift.

The env is taken as it comes: a dict observation (``observation``: the end effector's position and velocity, the
cube's position, rotation, velocity and angular velocity; ``achieved_goal``: the cube's position; ``desired_goal``),
3 actions (the end effector's displacement, 0.05 m per unit) in [-1, 1], ``info['is_success']``, 50-step episodes
that success ends (``terminated``) and a time limit truncates. Each step is 20 PyBullet steps of 2 ms, 0.04 s, which
the env keeps as ``env.unwrapped.sim.dt`` and does not declare as ``dt``: the env group states it
(``control_period_s: 0.04``). Needs panda-gym (``pip install panda-gym``), which the suite does not install.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable
from contextlib import contextmanager

import gymnasium as gym
import numpy as np

from examples.seeded_noise import SeededObservationNoise
from examples.weak_arm import WeakArm
from fiper.env_factory import check_severity

ENV_ID = "PandaPush-v3"


@contextmanager
def quiet_stdout():
    """PyBullet prints its connection options (``argv[0]=...``) on the process's stdout whenever a simulation starts."""
    sys.stdout.flush()
    saved, devnull = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    try:
        yield
    finally:
        ctypes.CDLL(None).fflush(None)  # what C's stdio still holds goes to /dev/null too
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


class FreshSimulation(gym.Wrapper):
    """Builds the PyBullet simulation anew at every reset.

    panda-gym's reset puts the bodies back but PyBullet keeps its contact caches, with which the solver starts the
    next step: an episode then depends on the episodes the env ran before it, not on its seed alone (the same seed
    and actions drift by millimetres within a few steps, centimetres by the end), which the outcome sweep and the
    videos, run in other envs, would not reproduce. A new simulation costs about 0.1 s.
    """

    def __init__(self, build: Callable[[], gym.Env]):
        super().__init__(build())
        self.build = build

    def reset(self, *, seed=None, options=None):
        self.env.close()
        self.env = self.build()
        return self.env.reset(seed=seed, options=options)


def make_panda(render_mode: str | None = None, setup: Callable[[gym.Env], None] | None = None, **kwargs) -> gym.Env:
    """PandaPush-v3, rebuilt at every reset (``FreshSimulation``); ``setup(env.unwrapped)`` changes each new one (a shift)."""
    try:
        with quiet_stdout():
            import panda_gym
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(f"{ENV_ID} needs panda-gym: pip install panda-gym (examples/gym_panda/README.md)") from err
    gym.register_envs(panda_gym)
    if render_mode is not None:  # panda-gym refuses render_mode=None: its default is already 'rgb_array'
        kwargs = {"render_mode": render_mode, "render_width": 480, "render_height": 360, **kwargs}

    def build() -> gym.Env:
        with quiet_stdout():
            env = gym.make(ENV_ID, **kwargs)
        if setup is not None:
            setup(env.unwrapped)
        return env

    return FreshSimulation(build)


def weak_arm(severity: float, render_mode: str | None = None, **kwargs) -> gym.Env:
    severity = check_severity(severity, "weak_arm")  # before the env is built
    return WeakArm(make_panda(render_mode, **kwargs), severity)


def obs_noise(severity: float, render_mode: str | None = None, **kwargs) -> gym.Env:
    severity = check_severity(severity, "obs_noise")
    return SeededObservationNoise(make_panda(render_mode, **kwargs), 0.01 * severity, key="observation", dtype=np.float32)


def wide_start(severity: float, render_mode: str | None = None, **kwargs) -> gym.Env:
    """The cube starts up to 0.15 + 0.07·severity m from the table's centre line on each axis (0.15 in distribution),
    still on the table (its edge is at x = 0.25 m) but further from the arm's base at severity 1."""
    severity = check_severity(severity, "wide_start")
    half = 0.15 + 0.07 * severity

    def setup(inner):
        inner.task.obj_range_low, inner.task.obj_range_high = np.array([-half, -half, 0.0]), np.array([half, half, 0.0])

    return make_panda(render_mode, setup, **kwargs)


def slippery(severity: float, render_mode: str | None = None, **kwargs) -> gym.Env:
    """The cube's lateral friction is 1 - 0.9·severity times its 0.5, set in PyBullet (changeDynamics): a wet or oily
    table, on which a pushed cube slides on and turns."""
    severity = check_severity(severity, "slippery")

    def setup(inner):
        inner.sim.physics_client.changeDynamics(inner.sim._bodies_idx["object"], -1, lateralFriction=0.5 * (1.0 - 0.9 * severity))

    return make_panda(render_mode, setup, **kwargs)
