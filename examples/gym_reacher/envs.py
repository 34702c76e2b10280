"""Env factories for gymnasium's Reacher-v5: the nominal task and one factory per shift.

Reacher-v5 has a flat 10-d observation (joint cos / sin, target position, joint velocities,
fingertip − target), 2 joint torques as actions, no termination and no success signal. The
factories add the one thing fiper cannot guess, what success is (``info['is_success']``, the
gymnasium-robotics convention; the episode ends there); failures are left to fiper's default (a
timeout at the last step). Each shift factory is named in ``launch.stress factories.<shift>=`` and
called as ``f(severity=..., **env.kwargs)`` with severity in [0, 1], 0 being the nominal task.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from examples.seeded_noise import SeededObservationNoise
from fiper.env_factory import check_severity

ENV_ID = "Reacher-v5"


def _gym_make(max_episode_steps: int) -> gym.Env:
    try:
        return gym.make(ENV_ID, max_episode_steps=int(max_episode_steps))
    except ModuleNotFoundError as err:  # gymnasium's MuJoCo envs import imageio for rendering
        raise ModuleNotFoundError(f"gymnasium's {ENV_ID} needs the package {err.name!r}: pip install 'fiper[image]' "
                                  f"(or pip install {err.name})") from err


class ReachSuccess(gym.Wrapper):
    """Success when the fingertip is within ``radius`` metres of the target; the episode ends there."""

    def __init__(self, env: gym.Env, radius: float = 0.02):
        super().__init__(env)
        if not (isinstance(radius, (int, float)) and radius > 0):
            raise ValueError(f"success_radius must be a positive number of metres, got {radius!r} (e.g. env.kwargs.success_radius=0.02)")
        self.radius = float(radius)

    def distance(self) -> float:
        data = self.env.unwrapped.data
        return float(np.linalg.norm(data.body("fingertip").xpos[:2] - data.body("target").xpos[:2]))

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        success = self.distance() < self.radius
        return obs, reward, bool(terminated or success), bool(truncated and not success), {**info, "is_success": success}


class ArmStart(gym.Wrapper):
    """The arm starts outside the demonstrations' range (Reacher draws both joints in ±0.1 rad): the
    shoulder anywhere within ±(0.1 + 2.9·severity) rad, the elbow within ±(0.1 + 2.4·severity) rad."""

    def __init__(self, env: gym.Env, severity: float):
        super().__init__(env)
        self.severity = severity

    def reset(self, *, seed=None, options=None):
        obs, info = self.env.reset(seed=seed, options=options)
        if self.severity == 0.0:
            return obs, info
        rng = np.random.default_rng(None if seed is None else [int(seed), 7])
        env = self.env.unwrapped
        qpos, qvel = env.data.qpos.copy(), env.data.qvel.copy()
        qpos[:2] = rng.uniform(-1, 1, 2) * (0.1 + np.array([2.9, 2.4]) * self.severity)
        env.set_state(qpos, qvel)
        return env._get_obs(), info



def make_reacher(max_episode_steps: int = 50, success_radius: float = 0.02) -> gym.Env:
    """The nominal task: Reacher-v5 (its own 50-step limit) with a success signal."""
    return ReachSuccess(_gym_make(max_episode_steps), success_radius)


def arm_start(severity: float = 0.0, **kwargs) -> gym.Env:
    """Shift: the arm starts outside the demonstrations' range (ArmStart)."""
    return ArmStart(make_reacher(**kwargs), check_severity(severity, "arm_start"))


def damp_joints(env: gym.Env, severity: float) -> gym.Env:
    """``env`` with both joints' damping × (1 + 19·severity)."""
    factor = 1.0 + 19.0 * check_severity(severity, "joint_damping")
    model = env.unwrapped.model
    for joint in ("joint0", "joint1"):
        model.dof_damping[model.joint(joint).dofadr[0]] *= factor
    return env


def joint_damping(severity: float = 0.0, **kwargs) -> gym.Env:
    """Shift: a stiff arm (damp_joints)."""
    return damp_joints(make_reacher(**kwargs), severity)


def obs_noise(severity: float = 0.0, **kwargs) -> gym.Env:
    """Shift: noisy observations (SeededObservationNoise)."""
    return SeededObservationNoise(make_reacher(**kwargs), 0.02 * check_severity(severity, "obs_noise"))
