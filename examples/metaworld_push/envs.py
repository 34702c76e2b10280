"""Env factories for Meta-World's push-v3: the nominal task and one factory per shift.

``push-v3`` as metaworld 3 ships it: a Sawyer arm whose 4 actions move the hand by deltas (x, y, z in [-1, 1], the
hand's mocap target moves 1 cm per unit per step) and close the fingers (the 4th, [-1, 1]); a flat 39-d observation
(hand x, y, z, finger opening, the puck's position and quaternion, zeros for a second object, the same 18 entries one
step before, the goal's x, y, z); 5 MuJoCo steps of 2.5 ms per step (its ``dt``, 0.0125 s). Success is the puck
within 5 cm of the goal (``info['success']``, 0.0 or 1.0).

What the factory adds, and nothing else:

- a start drawn from the episode's seed. ``gym.make('Meta-World/MT1', env_name=...)`` picks one of 50 fixed tasks at
  every reset from the env's generator, which ``reset(seed)`` does not reseed (metaworld's ``reset`` ignores its
  seed), so a seed does not fix the episode; here ``reset(seed)`` seeds the env (metaworld's own ``env.seed(seed)``)
  and the puck's and goal's positions are drawn from it, uniform in metaworld's own ranges (``SeededStart``);
- the goal in the observation: a task of ``metaworld.MT1(env_name, seed=0)`` is set once, as MT1 does, which makes
  the goal observable (a bare env zeroes it) and unlocks ``step``;
- upright videos: metaworld's cameras render upside down (its ``corner`` cameras and ``topview`` alike), so
  ``render()`` returns the frame flipped top to bottom (``UprightRender``);
- the end of an episode at its first success (``terminated``), as metaworld's own evaluation does
  (``terminate_on_success``), and a time limit of ``max_episode_steps`` (150: the expert succeeds within 75)
  instead of metaworld's 500, after which its ``step`` raises.

Needs metaworld (which pins mujoco 3.3): README.md says how it was installed. Rendering (``render_mode='rgb_array'``)
needs an OpenGL backend: ``MUJOCO_GL=egl`` headless.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from examples.seeded_noise import SeededObservationNoise
from fiper.env_factory import check_severity

ENV_NAME = "push-v3"
MAX_EPISODE_STEPS = 150
WIDE = np.array([0.1, 0.05])   # wide_start widens the puck's start by up to this on each side (m): x ±0.2, y 0.55..0.75


def _metaworld():
    try:
        import metaworld
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError("Meta-World's push-v3 needs metaworld: pip install metaworld in an environment of its "
                                  "own, since it pins mujoco 3.3 (examples/metaworld_push/README.md)") from err
    return metaworld


class SeededStart(gym.Wrapper):
    """reset(seed) seeds the env and draws the puck's and goal's start from it; the first success ends the episode."""

    def __init__(self, env: gym.Env, widen=(0.0, 0.0)):
        super().__init__(env)
        inner = env.unwrapped
        inner._freeze_rand_vec, inner.seeded_rand_vec = False, True   # draw from inner.np_random, not a fixed task
        space = inner._random_reset_space                           # [puck x, y, z, goal x, y, z]
        low, high = space.low.copy(), space.high.copy()
        low[:2] -= widen
        high[:2] += widen
        inner._random_reset_space = gym.spaces.Box(low, high, dtype=np.float64)

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            self.env.unwrapped.seed(int(seed))
        return self.env.reset(seed=seed, options=options)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        info["success"] = bool(info.get("success", 0.0))
        return obs, reward, terminated or info["success"], truncated, info


class UprightRender(gym.Wrapper):
    """``render()`` flipped top to bottom: metaworld's cameras give the scene upside down."""

    def render(self):
        frame = self.env.render()
        return frame if frame is None else np.ascontiguousarray(frame[::-1])


def make_metaworld(render_mode: str | None = None, env_name: str = ENV_NAME, max_episode_steps: int = MAX_EPISODE_STEPS,
                   width: int = 160, height: int = 160, camera_name: str = "corner2", widen=(0.0, 0.0)) -> gym.Env:
    metaworld = _metaworld()
    benchmark = metaworld.MT1(env_name, seed=0)     # seeded: unseeded, MT1 draws its tasks when it is built
    env = benchmark.train_classes[env_name](render_mode=render_mode, width=width, height=height, camera_name=camera_name)
    env.set_task(benchmark.train_tasks[0])          # the goal observable, step unlocked; the start then comes from the seed
    return gym.wrappers.TimeLimit(UprightRender(SeededStart(env, widen)), max_episode_steps)


def wide_start(severity: float, render_mode: str | None = None, **kwargs) -> gym.Env:
    """The puck starts up to WIDE·severity (m) beyond metaworld's x ±0.1, y 0.6..0.7 on each side."""
    severity = check_severity(severity, "wide_start")  # before the env is built
    return make_metaworld(render_mode, widen=WIDE * severity, **kwargs)


def heavy(severity: float, render_mode: str | None = None, **kwargs) -> gym.Env:
    """The puck weighs 1 + 19·severity times its mass and slides with 1 + 4·severity times its friction."""
    severity = check_severity(severity, "heavy")
    env = make_metaworld(render_mode, **kwargs)
    model = env.unwrapped.model
    body = model.body("obj").id
    model.body_mass[body] *= 1.0 + 19.0 * severity
    model.geom_friction[model.geom_bodyid == body, 0] *= 1.0 + 4.0 * severity
    return env


def obs_noise(severity: float, render_mode: str | None = None, **kwargs) -> gym.Env:
    """Noise of std 0.01·severity on every observed entry (m for the positions)."""
    severity = check_severity(severity, "obs_noise")
    return SeededObservationNoise(make_metaworld(render_mode, **kwargs), 0.01 * severity, dtype=np.float64)
