"""Env factories for lerobot's gym-xarm XarmLift: the nominal task and one factory per shift.

``gym_xarm/XarmLift-v0`` as gym-xarm registers it: a MuJoCo xArm whose gripper follows a mocap body, 4 actions (the
grasp point's x, y, z motion in [-1, 1], the mocap target moved 0.05 m per unit per step, and the gripper in [-1, 1]:
-1 opens, 1 closes), a flat 28-d state observation (``obs_type='state'``: the grasp point, its velocity, the cube's
position, quaternion and velocities, their difference, distances and the gripper's angle, positions relative to the
table's centre), 300 steps (its ``dt`` says 0.04 s). Actions must be float32 and inside [-1, 1]: its ``step`` asserts it.

What the factory adds, and nothing else changed:

- ``info['success']``: the cube 0.15 m above its start, which ends the episode. gym-xarm 0.1.1's own success
  (``info['is_success']``) compares the cube's height relative to the table with a target in world coordinates
  (0.716 m above the table's centre, beyond the arm's reach), so it is never true;
- a reset of MuJoCo's data before gym-xarm's own reset, which sets positions and velocities but keeps the gripper's
  last command (``data.ctrl``), so a gripper closed at the end of one episode closes in the next: the same seed gave
  another first observation after another episode, which the pipeline's seeded-reset check refuses;
- ``render()`` of the ``camera0`` view at RENDER_SIZE px for the act stage's videos: gym-xarm's own passes
  ``camera_name`` to gymnasium's ``MujocoRenderer.render``, which gymnasium 1 no longer takes (a TypeError);
- a time limit of ``MAX_STEPS`` (the expert lifts the cube within 120 steps) instead of gym-xarm's 300;
- the cube's start drawn within ``HALF_WIDTH`` of gym-xarm's own centre (the same ±0.05 m gym-xarm draws), from the
  env's seeded generator, so ``wide_start`` can widen it.

Needs gym-xarm (mujoco < 3) in an environment of its own; README.md says how it was installed.
"""

from __future__ import annotations

import gymnasium as gym
import mujoco
import numpy as np

from examples.seeded_noise import SeededObservationNoise
from fiper.env_factory import check_severity

ENV_ID = "gym_xarm/XarmLift-v0"
LIFT = 0.15                         # m above its start the cube must reach
MAX_STEPS = 150
CENTRE = np.array([-0.15, -0.10])   # gym-xarm's cube start relative to the table's centre (x, y)
HALF_WIDTH = np.array([0.05, 0.05])  # its draw, the in-distribution start
WIDE = np.array([0.07, 0.07])       # wide_start adds up to this at severity 1
CUBE = 6                            # obs[6:9]: the cube's position
RENDER_SIZE = 160                   # px of a video frame (render_mode='rgb_array')
HEAVY = 9.0                         # heavy: the cube weighs 1 + HEAVY·severity times its 17 kg


class LiftLabels(gym.Wrapper):
    """MuJoCo's data reset, the cube's start drawn from the env's seeded generator, ``info['success']`` at a lift of LIFT m."""

    def __init__(self, env: gym.Env, half_width=HALF_WIDTH):
        super().__init__(env)
        self.half_width = np.asarray(half_width, dtype=float)
        self.start_z = 0.0
        self._renderer = None

    def reset(self, *, seed=None, options=None):
        inner = self.env.unwrapped
        mujoco.mj_resetData(inner.model, inner.data)  # gym-xarm's reset keeps the gripper's last command (data.ctrl)
        obs, info = super().reset(seed=seed, options=options)
        xy = CENTRE + inner.np_random.uniform(-self.half_width, self.half_width)
        qpos = inner.data.joint("object_joint0").qpos
        qpos[:2] = xy + inner.center_of_table[:2]
        mujoco.mj_forward(inner.model, inner.data)
        obs = inner.get_obs()
        self.start_z = float(obs[CUBE + 2])
        return obs, info

    def render(self):
        """The ``camera0`` frame, RENDER_SIZE px square, from a renderer of the wrapper's own (gym-xarm's ``render``
        passes ``camera_name`` to gymnasium's ``MujocoRenderer.render``, which gymnasium 1 no longer takes)."""
        if self.render_mode != "rgb_array":
            return self.env.render()
        inner = self.env.unwrapped
        if self._renderer is None:
            inner.model.vis.global_.offwidth = max(inner.model.vis.global_.offwidth, RENDER_SIZE)
            inner.model.vis.global_.offheight = max(inner.model.vis.global_.offheight, RENDER_SIZE)
            self._renderer = mujoco.Renderer(inner.model, RENDER_SIZE, RENDER_SIZE)
        self._renderer.update_scene(inner.data, camera="camera0")
        return self._renderer.render()

    def close(self):
        if hasattr(self._renderer, "close"):  # mujoco 2.3's Renderer has none
            self._renderer.close()
        self._renderer = None
        super().close()

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        info["success"] = bool(obs[CUBE + 2] >= self.start_z + LIFT)
        return obs, reward, terminated or info["success"], truncated, info


def _gym_xarm():
    try:
        import gym_xarm  # noqa: F401  (registers the gym_xarm/ ids)
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(f"{ENV_ID} needs gym-xarm: pip install gym-xarm in an environment of its own, since "
                                  "it needs mujoco < 3 (examples/gym_xarm/README.md)") from err


def make_xarm(render_mode: str | None = None, half_width=HALF_WIDTH, max_episode_steps: int = MAX_STEPS,
              **kwargs) -> gym.Env:
    _gym_xarm()
    kwargs.setdefault("obs_type", "state")
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    return LiftLabels(gym.make(ENV_ID, max_episode_steps=max_episode_steps, **kwargs), half_width)


def wide_start(severity: float, render_mode: str | None = None, **kwargs) -> gym.Env:
    """The cube starts up to HALF_WIDTH + WIDE·severity from CENTRE (HALF_WIDTH in distribution)."""
    severity = check_severity(severity, "wide_start")  # before the env is built
    return make_xarm(render_mode, half_width=HALF_WIDTH + WIDE * severity, **kwargs)


def heavy(severity: float, render_mode: str | None = None, **kwargs) -> gym.Env:
    """The cube weighs 1 + 9·severity times its mass (17 kg in distribution: gym-xarm's 7 cm cube of density 50000)."""
    severity = check_severity(severity, "heavy")
    env = make_xarm(render_mode, **kwargs)
    model = env.unwrapped.model
    model.body_mass[model.body("object").id] *= 1.0 + HEAVY * severity
    return env



def obs_noise(severity: float, render_mode: str | None = None, **kwargs) -> gym.Env:
    """Noise of std 0.01·severity on every observed entry."""
    severity = check_severity(severity, "obs_noise")
    return SeededObservationNoise(make_xarm(render_mode, **kwargs), 0.01 * severity)
