"""Env factories for lerobot's gym-hil PandaPickCube: the nominal task and one factory per shift.

``gym_hil/PandaPickCube-v0`` as gym-hil registers it: a MuJoCo Franka Panda on operational-space control, 4 actions
(the end-effector's x, y, z motion in [-1, 1], 0.025 m per unit per step, and the gripper in [0, 2]: 0 opens, 1
keeps, 2 closes), a dict observation (``agent_pos``: 7 joint angles, 7 joint velocities, the gripper command
0..255, the pinch point's x, y, z; ``environment_state``: the cube's position), 100 steps of 0.1 s (its
``control_dt``). Success is a lift of 0.1 m (``info['succeed']``), which ends the episode; a cube pushed 5 cm past
the sampling area ends it too.

Three things are added, and nothing else changed:

- ``info['success']`` from gym-hil's ``info['succeed']`` (fiper reads ``success`` / ``is_success``), and
  ``info['failure_reason'] = 'cube_out_of_bounds'`` when the cube leaves the area;
- the cube's start drawn from the episode's seed (gym-hil's ``random_block_position`` draws from numpy's global
  generator, which ``reset(seed)`` does not seed, so a seed would not fix the episode): uniform in
  ``CENTRE ± HALF_WIDTH``;
- ``reset_delay_seconds=0``: gym-hil's wrapped envs sleep 1 s in every reset, for a person at the viewer, and log
  "Reset delay of ... seconds" on the root logger, which hydra's entry points print at INFO: one line per reset
  in every stage's output, filtered out here (``QuietResetDelay``).

Needs gym-hil (mujoco < 3.9) and an OpenGL backend even for state observations (the env builds a renderer when
made): ``MUJOCO_GL=egl`` headless; README.md says how it was installed.
"""

from __future__ import annotations

import logging

import gymnasium as gym
import mujoco
import numpy as np

from examples.seeded_noise import SeededObservationNoise
from fiper.env_factory import check_severity

ENV_ID = "gym_hil/PandaPickCube-v0"
CENTRE = np.array([0.42, 0.0])      # the cube's start in distribution: CENTRE ± HALF_WIDTH (m)
HALF_WIDTH = np.array([0.03, 0.05])
WIDE = np.array([0.08, 0.10])       # wide_start adds up to this: x 0.31..0.53, y -0.15..0.15 at severity 1


class SeededCube(gym.Wrapper):
    """The cube's start drawn from the env's seeded generator, ``info['success']`` and a failure reason."""

    def __init__(self, env: gym.Env, half_width=HALF_WIDTH):
        super().__init__(env)
        self.half_width = np.asarray(half_width, dtype=float)

    def reset(self, *, seed=None, options=None):
        _, info = super().reset(seed=seed, options=options)
        inner = self.env.unwrapped
        xy = CENTRE + inner.np_random.uniform(-self.half_width, self.half_width)
        inner.data.jnt("block").qpos[:3] = (*xy, inner._block_z)
        mujoco.mj_forward(inner.model, inner.data)
        inner._z_init = inner.data.sensor("block_pos").data[2]
        return inner._compute_observation(), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        info["success"] = bool(info.get("succeed", False))
        if terminated and not info["success"]:
            info["failure_reason"] = "cube_out_of_bounds"
        return obs, reward, terminated, truncated, info


class QuietResetDelay(logging.Filter):
    """Drops gym-hil's "Reset delay of ... seconds" record (logged on the root logger at every reset)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Reset delay of")


def _quiet_reset_delay() -> None:
    root = logging.getLogger()
    if not any(isinstance(f, QuietResetDelay) for f in root.filters):
        root.addFilter(QuietResetDelay())


def _gym_hil():
    try:
        import gym_hil  # noqa: F401  (registers the gym_hil/ ids)
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(f"{ENV_ID} needs gym-hil: pip install gym-hil in an environment of its own, since it "
                                  "needs mujoco < 3.9 (examples/gym_hil/README.md)") from err


def make_hil(render_mode: str | None = None, half_width=HALF_WIDTH, **kwargs) -> gym.Env:
    _gym_hil()
    _quiet_reset_delay()
    kwargs.setdefault("reset_delay_seconds", 0.0)
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    return SeededCube(gym.make(ENV_ID, **kwargs), half_width)


def wide_start(severity: float, render_mode: str | None = None, **kwargs) -> gym.Env:
    """The cube starts up to HALF_WIDTH + WIDE·severity from CENTRE (HALF_WIDTH in distribution)."""
    severity = check_severity(severity, "wide_start")  # before the env is built
    return make_hil(render_mode, half_width=HALF_WIDTH + WIDE * severity, **kwargs)


def heavy(severity: float, render_mode: str | None = None, **kwargs) -> gym.Env:
    """The cube weighs 1 + 49·severity times its mass (0.1 kg in distribution, 5 kg at severity 1)."""
    severity = check_severity(severity, "heavy")
    env = make_hil(render_mode, **kwargs)
    model = env.unwrapped.model
    model.body_mass[model.body("block").id] *= 1.0 + 49.0 * severity
    return env


def obs_noise(severity: float, render_mode: str | None = None, **kwargs) -> gym.Env:
    """Noise of std 0.02·severity m on the cube's observed position (the arm's state stays exact)."""
    severity = check_severity(severity, "obs_noise")
    return SeededObservationNoise(make_hil(render_mode, **kwargs), 0.02 * severity, key="environment_state",
                                  dtype=np.float32)

