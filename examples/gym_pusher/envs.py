"""Env factories for gymnasium's Pusher-v5: the nominal task and one factory per shift.

Pusher-v5 is a 7-DoF arm driven by joint torques (7 actions in [-2, 2] N·m) whose fork-shaped hand pushes a
cylinder on a table toward a goal disc. Its observation is a flat 23-d vector (7 joint angles, 7 joint velocities,
the hand's, the object's and the goal's positions); it never terminates and never says success. The factories add
what fiper cannot guess, what success is (``info['is_success']`` when the object's centre is within
``success_radius`` of the goal's, which ends the episode); failures are left to fiper's default (a timeout at the
last step). Each shift factory is named in ``launch.stress factories.<shift>=`` and called as
``f(severity=..., **env.kwargs)`` with severity in [0, 1], 0 being the nominal task.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from examples.seeded_noise import SeededObservationNoise
from fiper.env_factory import check_severity

ENV_ID = "Pusher-v5"
OBJECT_DOFS = ("obj_slidey", "obj_slidex")


def object_goal_distance(env: gym.Env) -> float:
    """Horizontal distance (m) between the object's and the goal's centres."""
    data = env.unwrapped.data
    return float(np.linalg.norm(data.body("object").xpos[:2] - data.body("goal").xpos[:2]))


class PushSuccess(gym.Wrapper):
    """Success when the object's centre is within ``radius`` metres of the goal's; the episode ends there."""

    def __init__(self, env: gym.Env, radius: float = 0.08):
        super().__init__(env)
        if not (isinstance(radius, (int, float)) and radius > 0):
            raise ValueError(f"success_radius must be a positive number of metres, got {radius!r} (e.g. env.kwargs.success_radius=0.08)")
        self.radius = float(radius)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        success = object_goal_distance(self.env) < self.radius
        return obs, reward, bool(terminated or success), bool(truncated and not success), {**info, "is_success": success}


def make_pusher(max_episode_steps: int = 250, success_radius: float = 0.08, **kwargs) -> gym.Env:
    """The nominal task: Pusher-v5 for ``max_episode_steps`` steps of 0.05 s (gymnasium's default, 100, is too short
    for a push at the speed its soft object allows) with a success signal; ``kwargs`` go to gym.make (render_mode, ...)."""
    try:
        env = gym.make(ENV_ID, max_episode_steps=int(max_episode_steps), **kwargs)
    except ModuleNotFoundError as err:  # gymnasium's MuJoCo envs import imageio for rendering
        raise ModuleNotFoundError(f"gymnasium's {ENV_ID} needs the package {err.name!r}: pip install 'fiper[image]' "
                                  f"(or pip install {err.name})") from err
    return PushSuccess(env, success_radius)


class Shove(gym.Wrapper):
    """A horizontal shove on the object, once, at a random step in [30, 90): a force of 0.3·severity N in a random
    direction for 5 steps (0.25 s), which moves the free object up to about 0.15 m at severity 1."""

    def __init__(self, env: gym.Env, severity: float):
        super().__init__(env)
        self.force = 0.3 * severity
        self.rng = np.random.default_rng()
        self.at, self.t, self.direction = -1, 0, np.zeros(2)

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            self.rng = np.random.default_rng([int(seed), 13])
        self.at, self.t = int(self.rng.integers(30, 90)), 0
        angle = float(self.rng.uniform(0.0, 2.0 * np.pi))
        self.direction = np.array([np.cos(angle), np.sin(angle)])
        return self.env.reset(seed=seed, options=options)

    def step(self, action):
        data = self.env.unwrapped.data
        body = self.env.unwrapped.model.body("object").id
        data.xfrc_applied[body, :2] = self.force * self.direction if self.at <= self.t < self.at + 5 else 0.0
        self.t += 1
        return self.env.step(action)


def sticky_object(severity: float = 0.0, **kwargs) -> gym.Env:
    """Shift: a more resistant object, its slide joints' damping × (1 + severity) (the table's friction, as this
    model has it: the object slides on frictionless contacts against joint damping)."""
    factor = 1.0 + check_severity(severity, "sticky_object")
    env = make_pusher(**kwargs)
    model = env.unwrapped.model
    for joint in OBJECT_DOFS:
        model.dof_damping[model.joint(joint).dofadr[0]] *= factor
    return env


def shove(severity: float = 0.0, **kwargs) -> gym.Env:
    """Shift: the object is shoved once mid-episode (Shove)."""
    return Shove(make_pusher(**kwargs), check_severity(severity, "shove"))


def obs_noise(severity: float = 0.0, **kwargs) -> gym.Env:
    """Shift: noisy observations, std 0.01·severity on every feature (rad, rad/s, m), seeded with the episode."""
    return SeededObservationNoise(make_pusher(**kwargs), 0.01 * check_severity(severity, "obs_noise"))
