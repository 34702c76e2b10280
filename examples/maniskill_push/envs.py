"""Env factories for ManiSkill3's PushCube-v1 (SAPIEN / PhysX): the nominal task and one factory per shift.

A Franka arm pushes a 4 cm cube (64 g) along +x into a goal disc of radius 0.1 m whose centre is 0.2 m ahead of the
cube's start; the cube starts anywhere in a 0.2 m square around the table's centre. ManiSkill's envs are batched: even
one env returns torch tensors with a leading env axis (observation (1, 35), reward / terminated / truncated (1,), info
values as tensors). ``make_push`` builds one CPU env the way ManiSkill documents for single-env gymnasium use, wrapped
in ``mani_skill.utils.wrappers.gymnasium.CPUGymWrapper``, so that fiper gets numpy, unbatched: a 35-d observation
(``obs``: the arm's 9 joint positions and 9 velocities, the tool centre point's pose (position, quaternion), the goal's
position, the cube's pose), 4 actions in [-1, 1] (``pd_ee_delta_pos``: the tool centre point's displacement, 0.1 m
per unit on each axis, and the fingers' opening, -1 closed), ``info['success']``. Success ends an episode
(``terminated``); the time limit truncates it at 50 steps. One step is 5 PhysX steps of 10 ms, 0.05 s, which the env
declares as ``control_timestep`` and fiper reads. Needs mani-skill (``pip install mani-skill``), which the suite does not
install.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import gymnasium as gym
import numpy as np

from examples.seeded_noise import SeededObservationNoise
from examples.weak_arm import WeakArm
from fiper.env_factory import check_severity

ENV_ID = "PushCube-v1"
CUBE_RANGE = 0.1  # m: the cube starts in [-0.1, 0.1]² (ManiSkill's PushCube)
GOAL_AHEAD = 0.2  # m from the cube's start to the goal's centre, along +x (0.1 + the goal's radius)
CUBE_MASS = 0.064  # kg: a 4 cm cube at ManiSkill's default density, 1000 kg/m³


def without_renderer() -> None:
    """Lets ManiSkill 3.0.1 build its scenes on a machine without a Vulkan driver.

    With ``render_backend='none'`` ManiSkill skips every visual body, but its builders still create a SAPIEN
    ``RenderMaterial`` for each (a cube's colour, the robot's meshes), and SAPIEN 3.0.3 cannot create one without a
    rendering device: ``RuntimeError: failed to find a rendering device``. When no device is found, the material is
    replaced by an inert stand-in that nothing reads (the visuals it colours are never built); physics, collision
    shapes, masses and observations are ManiSkill's own. On a machine with Vulkan it does nothing.
    """
    import sapien

    try:
        sapien.render.RenderMaterial()
        return
    except RuntimeError:
        pass

    class InertMaterial:
        def __init__(self, *args, **kwargs):
            pass

    sapien.render.RenderMaterial = InertMaterial
    sapien.pysapien.render.RenderMaterial = InertMaterial  # what SAPIEN's own ActorBuilder names


def make_push(render_mode: str | None = None, setup: Callable[[gym.Env], bool] | None = None, **kwargs) -> gym.Env:
    """PushCube-v1, state observations, CPU simulation, ``pd_ee_delta_pos`` control, as one numpy env
    (``CPUGymWrapper``), its scene rebuilt at every reset (``reconfiguration_freq=1``: PhysX keeps its contact state
    across a plain reset, so the same seed and actions drift apart by millimetres to centimetres once the arm touches
    the cube); ``setup(env.unwrapped)`` changes it after every reset (a shift) and says whether it moved a body."""
    try:
        import mani_skill.envs  # noqa: F401  (registers the ManiSkill ids with gymnasium)
        from mani_skill.utils.wrappers.gymnasium import CPUGymWrapper
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(f"{ENV_ID} needs ManiSkill3: pip install mani-skill (examples/maniskill_push/README.md)") from err
    if render_mode is None:
        without_renderer()
    kwargs = {"obs_mode": "state", "control_mode": "pd_ee_delta_pos", "sim_backend": "cpu", "reconfiguration_freq": 1,
              "render_backend": "none" if render_mode is None else "cpu", "render_mode": render_mode, **kwargs}
    env = gym.make(ENV_ID, num_envs=1, **kwargs)
    env = CPUGymWrapper(env)  # numpy, no env axis: what ManiSkill documents for one CPU env in gymnasium's API
    return AfterReset(env, setup) if setup is not None else env


class AfterReset(gym.Wrapper):
    """Calls ``setup(env.unwrapped)`` after each reset and returns the observation the changed scene gives."""

    def __init__(self, env: gym.Env, setup: Callable[[gym.Env], None]):
        super().__init__(env)
        self.setup = setup

    def reset(self, *, seed=None, options=None):
        obs, info = self.env.reset(seed=seed, options=options)
        inner = self.env.unwrapped
        if self.setup(inner):  # it moved a body: observe the scene again
            obs = np.asarray(inner.get_obs()[0].cpu().numpy(), dtype=np.float32)
        return obs, info


def weak_arm(severity: float, render_mode: str | None = None, **kwargs) -> gym.Env:
    severity = check_severity(severity, "weak_arm")  # before the env is built
    return WeakArm(make_push(render_mode, **kwargs), severity)


def obs_noise(severity: float, render_mode: str | None = None, **kwargs) -> gym.Env:
    severity = check_severity(severity, "obs_noise")
    return SeededObservationNoise(make_push(render_mode, **kwargs), 0.01 * severity, dtype=np.float32)


def wide_start(severity: float, render_mode: str | None = None, **kwargs) -> gym.Env:
    """The cube starts up to 0.1 + 0.08·severity m from the table's centre on each axis (0.1 in distribution), its
    goal still 0.2 m ahead: at severity 1 a goal can lie beyond the arm's reach (x up to 0.38 m, 1.0 m from its base)."""
    severity = check_severity(severity, "wide_start")
    scale = (CUBE_RANGE + 0.08 * severity) / CUBE_RANGE

    def setup(inner) -> bool:
        import torch
        from mani_skill.utils.structs.pose import Pose

        pose = inner.obj.pose
        p = pose.p.clone()
        p[..., :2] *= scale  # ManiSkill's seeded uniform draw, stretched: the same seed, a wider square
        inner.obj.set_pose(Pose.create_from_pq(p=p, q=pose.q))
        goal = inner.goal_region.pose
        g = goal.p.clone()
        g[..., :2] = p[..., :2] + torch.tensor([GOAL_AHEAD, 0.0])
        inner.goal_region.set_pose(Pose.create_from_pq(p=g, q=goal.q))
        return True

    return make_push(render_mode, setup, **kwargs)


def heavy_cube(severity: float, render_mode: str | None = None, **kwargs) -> gym.Env:
    """The cube is 1 + 10.3·severity times as dense as its 1000 kg/m³ (64 g), up to lead's 11,300 kg/m³ (0.72 kg), set on
    its PhysX body: a heavier load that the arm's PD controller, with its force limits, pushes more slowly."""
    severity = check_severity(severity, "heavy_cube")
    mass = CUBE_MASS * (1.0 + 10.3 * severity)

    def setup(inner) -> bool:
        for body in inner.obj._bodies:  # the cube of the scene rebuilt at this reset
            body.set_mass(mass)
        return False

    return make_push(render_mode, setup, **kwargs)


os.environ.setdefault("MS_SKIP_ASSET_DOWNLOAD_PROMPT", "1")  # PushCube needs no downloaded assets
