"""Env factories for the DeepMind Control Suite's reacher (``dm_control/reacher-easy-v0`` through shimmy's gymnasium
bindings): the nominal task and one factory per shift.

dm_control's tasks never terminate and say nothing of success: reacher's reward is 1 while the fingertip is inside the
target sphere, and its episodes run 1000 steps (20 s). The factory adds what fiper cannot guess: success
(``info['is_success']`` while the fingertip is within the target's radius plus the fingertip's, dm_control's own
criterion, read from the physics; the episode ends there) and a shorter time limit. Its observation comes as it is, a
dict of float64 vectors (``position``, ``to_target``, ``velocity``), stored as three keys. The control period is
shimmy's ``dt`` (dm_control's control timestep, 0.02 s). Each shift factory is named in ``launch.stress
factories.<shift>=`` and called as ``f(severity=..., **env.kwargs)`` with severity in [0, 1], 0 the nominal task.
"""

from __future__ import annotations

import gymnasium as gym

from examples.seeded_noise import SeededObservationNoise
from fiper.env_factory import check_severity

ENV_ID = "dm_control/reacher-easy-v0"


def _gym_make(task: str, max_episode_steps: int, render_mode: str | None, width: int, height: int) -> gym.Env:
    try:
        import shimmy
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError("dm_control's tasks come to gymnasium through shimmy: pip install 'shimmy[dm-control]' dm-control") from err
    gym.register_envs(shimmy)  # gymnasium 1.x registers the dm_control/ ids only once shimmy is imported
    render = {"render_mode": render_mode, "render_kwargs": {"width": int(width), "height": int(height)}} if render_mode else {}
    return gym.make(task, max_episode_steps=int(max_episode_steps), **render)


def physics(env: gym.Env):
    """dm_control's Physics of the env under the wrappers (shimmy keeps the dm_control env as ``_env``)."""
    return env.unwrapped._env.physics


class ReachSuccess(gym.Wrapper):
    """``info['is_success']`` once the fingertip is inside the target (dm_control's reward 1); the episode ends there."""

    def distance(self) -> float:
        return float(physics(self.env).finger_to_target_dist())

    def radius(self) -> float:
        size = physics(self.env).named.model.geom_size
        return float(size["target", 0] + size["finger", 0])

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        success = self.distance() <= self.radius()
        return obs, reward, bool(terminated or success), bool(truncated and not success), {**info, "is_success": success}


def make_reacher(max_episode_steps: int = 100, render_mode: str | None = None, width: int = 96, height: int = 96,
                 task: str = ENV_ID) -> gym.Env:
    """The nominal task: ``task`` (a dm_control/reacher-* id) for ``max_episode_steps`` steps of 0.02 s, with a success
    signal; ``render_mode='rgb_array'`` renders ``width`` × ``height`` frames (the act stage's videos)."""
    return ReachSuccess(_gym_make(task, max_episode_steps, render_mode, width, height))


def weaken(env: gym.Env, severity: float) -> gym.Env:
    """``env`` with both motors' gear × (1 − 0.85·severity): the same command gives less torque."""
    gear = physics(env).model.actuator_gear
    gear[:, 0] *= 1.0 - 0.85 * check_severity(severity, "weak_motor")
    return env


def weak_motor(severity: float = 0.0, **kwargs) -> gym.Env:
    """Shift: weaker motors (weaken)."""
    return weaken(make_reacher(**kwargs), severity)


def obs_noise(severity: float = 0.0, **kwargs) -> gym.Env:
    """Shift: a noisy fingertip-to-target vector (std 0.06·severity m on ``to_target``; the joints read exact)."""
    return SeededObservationNoise(make_reacher(**kwargs), 0.06 * check_severity(severity, "obs_noise"), key="to_target")
