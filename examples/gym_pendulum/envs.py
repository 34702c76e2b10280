"""Env factories for gymnasium's InvertedPendulum-v5: the nominal task and one factory per shift.

InvertedPendulum-v5 has a flat 4-d observation (cart position, pole angle, their velocities), one
force on the cart as its action, and ends (``terminated``) when the pole leans past 0.2 rad; it
never says success. The factories add what fiper cannot guess: balancing until the time limit is a
success (``fiper.wrappers.TimeLimitIsSuccess``, ``info['success']``). A fall is left to fiper's default label, a ``terminated``
failure at that step: a physical failure with a mid-episode onset, so the evaluation measures how
long before the fall an alarm came. Each shift factory is named in ``launch.stress
factories.<shift>=`` and called as ``f(severity=..., **env.kwargs)`` with severity in [0, 1], 0
being the nominal task.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from fiper.env_factory import check_severity
from fiper.wrappers import TimeLimitIsSuccess

ENV_ID = "InvertedPendulum-v5"


def make_pendulum(max_episode_steps: int = 200, **kwargs) -> gym.Env:
    """The nominal task: InvertedPendulum-v5 for ``max_episode_steps`` steps of 0.04 s; ``kwargs`` go to gym.make
    (e.g. render_mode, width, height)."""
    try:
        env = gym.make(ENV_ID, max_episode_steps=int(max_episode_steps), **kwargs)
    except ModuleNotFoundError as err:  # gymnasium's MuJoCo envs import imageio for rendering
        raise ModuleNotFoundError(f"gymnasium's {ENV_ID} needs the package {err.name!r}: pip install 'fiper[image]' "
                                  f"(or pip install {err.name})") from err
    return TimeLimitIsSuccess(env)  # the pole still up at the time limit: a success


class Push(gym.Wrapper):
    """A sideways shove on the pole, once, at a random step in [40, 120): a horizontal force of 4·severity N for 5 steps."""

    def __init__(self, env: gym.Env, severity: float):
        super().__init__(env)
        self.force = 4.0 * severity
        self.rng = np.random.default_rng()
        self.at, self.t = -1, 0

    def reset(self, **kwargs):
        if kwargs.get("seed") is not None:
            self.rng = np.random.default_rng([int(kwargs["seed"]), 7])
        self.at, self.t = int(self.rng.integers(40, 120)), 0
        self.sign = float(self.rng.choice([-1.0, 1.0]))
        return self.env.reset(**kwargs)

    def step(self, action):
        data, pole = self.env.unwrapped.data, self.env.unwrapped.model.body("pole").id
        data.xfrc_applied[pole, 0] = self.sign * self.force if self.at <= self.t < self.at + 5 else 0.0
        self.t += 1
        return self.env.step(action)


class WeakMotor(gym.Wrapper):
    """The cart's motor gives (1 − 0.8·severity) of its force: the same action pushes less."""

    def __init__(self, env: gym.Env, severity: float):
        super().__init__(env)
        model = env.unwrapped.model
        model.actuator_gear[:, 0] = model.actuator_gear[:, 0] * (1.0 - 0.8 * severity)


class ObsNoise(gym.ObservationWrapper):
    """Gaussian noise of std 0.01·severity on every observed feature (seeded with the episode)."""

    def __init__(self, env: gym.Env, severity: float):
        super().__init__(env)
        self.std = 0.01 * severity
        self.rng = np.random.default_rng()

    def reset(self, **kwargs):
        if kwargs.get("seed") is not None:
            self.rng = np.random.default_rng([int(kwargs["seed"]), 11])
        return super().reset(**kwargs)

    def observation(self, obs):
        return obs + self.rng.normal(0.0, self.std, np.shape(obs)) if self.std else obs


def push(severity: float = 1.0, **kwargs) -> gym.Env:
    return Push(make_pendulum(**kwargs), check_severity(severity, "push"))


def weak_motor(severity: float = 1.0, **kwargs) -> gym.Env:
    return WeakMotor(make_pendulum(**kwargs), check_severity(severity, "weak_motor"))


def obs_noise(severity: float = 1.0, **kwargs) -> gym.Env:
    return ObsNoise(make_pendulum(**kwargs), check_severity(severity, "obs_noise"))
