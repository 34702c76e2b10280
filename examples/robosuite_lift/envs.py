"""Env factories for robosuite's Lift (Panda, the default controller in delta mode, low-dim observations): the nominal
task and one factory per shift.

robosuite's ``GymWrapper`` gives the gymnasium API; ``LiftTask`` adds what it lacks for fiper:

- **a seed that fixes the episode**: ``GymWrapper.reset(seed)`` seeds numpy's global generator, which robosuite 1.5 no
  longer draws from (the cube's placement and the arm's start noise come from the env's own ``rng``), so the same seed
  gave a new cube position at every reset. ``LiftTask.reset(seed)`` reseeds that generator in place (the placement
  sampler and the robot hold the same object). The env is built with ``seed=0``: robosuite draws the cube's size
  (2-2.2 cm half-side) when it builds the env, from that generator, so every env built has the same cube;
- **success**: ``info['success']`` (and ``is_success``) is ``env._check_success()`` at that step: the cube's centre
  more than 4 cm above the table. Success does not end the episode: the arm must hold the cube up to the time limit
  and the label is the last step's (lifted and held). Ended on success, every success would be short and every
  failure run to the limit, and the clock alone would tell them apart (``terminate_on_success=True`` does that);
- **a physical failure**: a cube that was lifted and falls back to the table ends the episode, ``terminated``, with
  ``info['failure_reason'] = 'dropped'`` at that step: an onset an alarm can precede;
- **a time limit that truncates**: robosuite reports its horizon as ``done``, which gymnasium reads as ``terminated``
  (fiper would label every timeout a ``terminated`` failure); the env runs with ``ignore_done=True`` inside a
  ``gymnasium.wrappers.TimeLimit``, which truncates and declares the limit;
- **frames**: ``render_mode='rgb_array'`` renders the ``frontview`` camera offscreen (the only time an offscreen
  renderer is made), upright.

The robosuite env resets softly (``hard_reset=False``): the model is built once, so a shift that changes it (mass,
friction, the placement range) is set once at build. Control: 20 Hz (robosuite's ``control_freq``; fiper reads the
period, 0.05 s, from ``control_timestep``). Needs robosuite with mujoco 3.3 to 3.9 (README.md), so the suite does not run it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from examples.seeded_noise import SeededObservationNoise
from examples.weak_arm import WeakArm
from fiper.env_factory import check_severity

HORIZON = 80  # env steps (4 s); the expert has the cube up in about 42 and holds it
OBS_KEYS = ("robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos", "cube_pos", "cube_quat", "gripper_to_cube_pos")
START_RANGE = 0.03  # m: robosuite's Lift places the cube within ±3 cm of the table's centre in x and y
DROPPED = 0.03  # m: a lifted cube whose centre is back below this height above the table has been dropped
INSTALL = "pip install robosuite==1.5.2 'mujoco>=3.3,<3.10' h5py in an environment of its own (examples/robosuite_lift/README.md)"


def _robosuite():
    try:
        import mujoco
        import robosuite
        from robosuite.wrappers import GymWrapper
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(f"robosuite's Lift needs robosuite: {INSTALL}") from err
    if tuple(int(p) for p in mujoco.__version__.split(".")[:2]) >= (3, 10):  # robosuite 1.5.2 builds no robot from 3.10 on
        raise RuntimeError(f"robosuite 1.5.2 cannot build Lift under mujoco {mujoco.__version__} (3.10 and later changed "
                           f"the calls and joint types it relies on): {INSTALL}")
    return robosuite, GymWrapper


class LiftTask(gym.Wrapper):
    """Seeded resets, ``info['success']`` / ``is_success``, a dropped cube as a physical failure, frames for ``render()``."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(self, env: gym.Env, render_mode: str | None = None, width: int = 256, height: int = 256,
                 camera: str = "frontview", terminate_on_success: bool = False):
        super().__init__(env)
        self.frames, self.width, self.height, self.camera = render_mode, int(width), int(height), camera
        self.terminate_on_success, self.lifted = terminate_on_success, False

    @property
    def render_mode(self) -> str | None:  # robosuite's GymWrapper has none
        return self.frames

    @property
    def lift(self) -> Any:
        """The robosuite Lift env (robosuite's wrapper calls it ``unwrapped``)."""
        return self.env.unwrapped

    def reset(self, *, seed=None, options=None):
        if seed is not None:  # the generator the placement sampler and the robot's start noise hold, reseeded in place
            self.lift.rng.bit_generator.state = np.random.default_rng(int(seed)).bit_generator.state
        obs, info = self.env.reset(seed=seed, options=options)
        self.lifted = False
        return obs, {**info, "success": False, "is_success": False}

    def cube_height(self) -> float:
        """The cube's centre above the table top (m)."""
        lift = self.lift
        return float(lift.sim.data.body_xpos[lift.cube_body_id][2] - lift.model.mujoco_arena.table_offset[2])

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        success = bool(self.lift._check_success())
        self.lifted = self.lifted or success
        info = {**info, "success": success, "is_success": success}
        if self.lifted and self.cube_height() < DROPPED:
            return obs, reward, True, truncated, {**info, "failure_reason": "dropped"}
        return obs, reward, terminated or (success and self.terminate_on_success), truncated, info

    def render(self):
        if self.frames != "rgb_array":
            return None
        frame = self.lift.sim.render(camera_name=self.camera, width=self.width, height=self.height)
        return np.ascontiguousarray(frame[::-1])  # MuJoCo's offscreen buffer is bottom-up


def make_lift(render_mode: str | None = None, width: int = 256, height: int = 256, horizon: int = HORIZON,
              terminate_on_success: bool = False, obs_keys: Sequence[str] = OBS_KEYS, **kwargs) -> gym.Env:
    """robosuite's Lift with a Panda as a gymnasium env: a dict observation of ``obs_keys`` (robosuite's names; its
    ``object-state`` is robomimic's ``object``), 7 actions in [-1, 1] (the hand's motion, 5 cm per unit, its rotation,
    the fingers: -1 open, 1 closed), ``horizon`` steps of 0.05 s. ``kwargs`` go to ``robosuite.make`` (e.g.
    ``control_freq``)."""
    robosuite, GymWrapper = _robosuite()
    logging.getLogger("robosuite_logs").setLevel(logging.WARNING)  # not a line per env built ("Loading controller ...")
    if render_mode not in (None, "rgb_array"):
        raise ValueError(f"render_mode={render_mode!r}: the Lift factory renders 'rgb_array' frames only (or None)")
    suite_env = robosuite.make("Lift", robots="Panda", use_camera_obs=False, use_object_obs=True,
                               has_renderer=False, has_offscreen_renderer=render_mode is not None,
                               hard_reset=False, ignore_done=True, **{"control_freq": 20, "seed": 0, **kwargs})
    env = LiftTask(GymWrapper(suite_env, keys=list(obs_keys), flatten_obs=False), render_mode, width, height,
                   terminate_on_success=terminate_on_success)
    return gym.wrappers.TimeLimit(env, max_episode_steps=int(horizon))


def lift_of(env: gym.Env) -> Any:
    """The robosuite Lift env inside what ``make_lift`` returns."""
    return env.unwrapped


def weak_arm(severity: float, render_mode: str | None = None, **kwargs) -> gym.Env:
    severity = check_severity(severity, "weak_arm")  # before the env is built
    return WeakArm(make_lift(render_mode, **kwargs), severity)


def obs_noise(severity: float, render_mode: str | None = None, **kwargs) -> gym.Env:
    """Noise of std 1 cm·severity on the observed cube position (the estimate a perception stack would give)."""
    severity = check_severity(severity, "obs_noise")
    return SeededObservationNoise(make_lift(render_mode, **kwargs), 0.01 * severity, key="cube_pos")


def slippery(severity: float, render_mode: str | None = None, **kwargs) -> gym.Env:
    """The cube weighs 1 + 4·severity times as much and its sliding friction is (1 - 0.9·severity) of robosuite's.

    MuJoCo takes the larger friction of two touching geoms, the fingers' pads' here, so the cube's geoms are given
    priority: their friction is the contact's."""
    severity = check_severity(severity, "slippery")
    env = make_lift(render_mode, **kwargs)
    model, cube = lift_of(env).sim.model, lift_of(env).cube
    body = model.body_name2id(cube.root_body)
    model.body_mass[body] *= 1.0 + 4.0 * severity
    for geom in np.flatnonzero(model.geom_bodyid == body):
        model.geom_friction[geom, 0] *= 1.0 - 0.9 * severity
        model.geom_priority[geom] = 1 if severity > 0 else model.geom_priority[geom]
    return env


def wide_start(severity: float, render_mode: str | None = None, **kwargs) -> gym.Env:
    """The cube starts up to 0.03 + 0.12·severity m from the table's centre in x and y (0.03 in distribution)."""
    severity = check_severity(severity, "wide_start")
    env = make_lift(render_mode, **kwargs)
    half = START_RANGE + 0.12 * severity
    sampler = lift_of(env).placement_initializer
    sampler.x_range, sampler.y_range = [-half, half], [-half, half]
    return env
