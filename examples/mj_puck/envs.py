"""A planar puck push written from an MJCF string: a disc pusher on two slide joints driven by POSITION actuators.

The action is the pusher's absolute (x, y) target in metres, in [-0.3, 0.3]² (two ``<position>`` actuators, kp 40,
on slide joints with damping 8: the disc settles on a target in about 0.2 s). It pushes a puck (on two slide joints
with damping, so the table's friction is the joints') onto a goal disc, past a fixed cylinder obstacle. The
observation is a flat 12-d vector: the pusher's position and velocity, the puck's position and velocity, the goal's
position and the obstacle's position (m, m/s). ``info['is_success']`` when the puck's centre is within
``success_radius`` of the goal's (the episode ends there); touching the obstacle with the pusher or the puck ends it
as a failure ``obstacle_collision`` at that step. Every shift factory is ``f(severity=..., **kwargs)``.
"""

from __future__ import annotations

import gymnasium as gym
import mujoco
import numpy as np

from examples.seeded_noise import SeededObservationNoise
from fiper.env_factory import check_severity

XML = """
<mujoco model="puck_push">
  <option timestep="0.005" gravity="0 0 -9.81"/>
  <visual><global offwidth="640" offheight="640"/></visual>
  <worldbody>
    <light pos="0 0 2" dir="0 0 -1"/>
    <camera name="top" pos="0 0 0.95" xyaxes="1 0 0 0 1 0"/>
    <geom name="table" type="plane" size="0.45 0.45 0.01" rgba="0.85 0.85 0.8 1" contype="0" conaffinity="0"/>
    <site name="goal" pos="0 0 0.001" size="0.04 0.001" type="cylinder" rgba="0.9 0.2 0.2 0.5"/>
    <body name="obstacle" pos="0.2 0.2 0.03">
      <geom name="obstacle" type="cylinder" size="0.035 0.03" rgba="0.3 0.3 0.3 1" contype="1" conaffinity="1"/>
    </body>
    <body name="pusher" pos="0 0 0.03">
      <joint name="pusher_x" type="slide" axis="1 0 0" damping="8" range="-0.35 0.35"/>
      <joint name="pusher_y" type="slide" axis="0 1 0" damping="8" range="-0.35 0.35"/>
      <geom name="pusher" type="cylinder" size="0.015 0.03" mass="0.3" rgba="0.1 0.3 0.9 1" contype="1" conaffinity="1"
            condim="1"/>
    </body>
    <body name="puck" pos="0 0 0.03">
      <joint name="puck_x" type="slide" axis="1 0 0" damping="0.6"/>
      <joint name="puck_y" type="slide" axis="0 1 0" damping="0.6"/>
      <geom name="puck" type="cylinder" size="0.03 0.02" mass="0.1" rgba="0.1 0.7 0.2 1" contype="1" conaffinity="1"
            condim="1"/>
    </body>
  </worldbody>
  <actuator>
    <position name="x" joint="pusher_x" kp="40" ctrlrange="-0.3 0.3" ctrllimited="true"/>
    <position name="y" joint="pusher_y" kp="40" ctrlrange="-0.3 0.3" ctrllimited="true"/>
  </actuator>
</mujoco>
"""

FRAME_SKIP = 10                         # 10 × 5 ms: a control period of 0.05 s
PUSHER_RADIUS, PUCK_RADIUS, OBSTACLE_RADIUS = 0.015, 0.03, 0.035
WORKSPACE = 0.3                         # m: the action space and the actuators' ctrlrange, ± this


class PuckPushEnv(gym.Env):
    """The nominal task; ``obstacle_shift`` in [0, 1] moves the obstacle from beside the push onto its path."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(self, render_mode: str | None = None, success_radius: float = 0.05, width: int = 240,
                 height: int = 240, obstacle_shift: float = 0.0, puck_damping: float = 0.6):
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode={render_mode!r} is not supported: use None or 'rgb_array'")
        if not (isinstance(success_radius, (int, float)) and success_radius > 0):
            raise ValueError(f"success_radius must be a positive number of metres, got {success_radius!r}")
        self.model = mujoco.MjModel.from_xml_string(XML)
        self.data = mujoco.MjData(self.model)
        self.render_mode, self.width, self.height = render_mode, int(width), int(height)
        self.success_radius, self.obstacle_shift = float(success_radius), float(obstacle_shift)
        for joint in ("puck_x", "puck_y"):
            self.model.dof_damping[self.model.joint(joint).dofadr[0]] = float(puck_damping)
        self.action_space = gym.spaces.Box(-WORKSPACE, WORKSPACE, (2,), np.float32)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (12,), np.float32)
        self._ids = {n: self.model.geom(n).id for n in ("pusher", "puck", "obstacle")}
        self._renderer = None
        self.goal = np.zeros(2)
        self.obstacle = np.zeros(2)

    @property
    def dt(self) -> float:
        """Seconds per env step (the control period fiper records)."""
        return self.model.opt.timestep * FRAME_SKIP

    def scene_obstacles(self) -> list[dict]:
        """This episode's obstacle, for a keep-out steering reward (fiper's SceneKeepOut)."""
        return [{"center": [*self.obstacle, 0.0], "radius": OBSTACLE_RADIUS, "height": 0.06, "shape": "cylinder"}]

    def _layout(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Pusher, puck, goal and obstacle positions: the puck 0.12-0.2 m from the goal, the pusher 7-11 cm behind it
        (±4 cm to the side), the obstacle beside the puck→goal segment (0.11-0.14 m off its midpoint, at least 8.5 cm
        along it from the puck), moved onto it by ``obstacle_shift``."""
        goal = rng.uniform(-0.15, 0.15, 2)
        angle = rng.uniform(0, 2 * np.pi)
        puck = np.clip(goal + rng.uniform(0.12, 0.2) * np.array([np.cos(angle), np.sin(angle)]), -0.22, 0.22)
        direction = (goal - puck) / np.linalg.norm(goal - puck)
        normal = np.array([-direction[1], direction[0]]) * rng.choice([-1.0, 1.0])
        offset = rng.uniform(0.11, 0.14) * (1.0 - self.obstacle_shift)
        along = max(0.5 * np.linalg.norm(goal - puck), 0.085)  # clear of the puck's start even on its path
        obstacle = puck + along * direction + offset * normal
        side = np.array([-direction[1], direction[0]])
        pusher = np.clip(puck - rng.uniform(0.07, 0.11) * direction + rng.uniform(-0.04, 0.04) * side, -0.28, 0.28)
        return pusher, puck, goal, obstacle

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        pusher, puck, goal, obstacle = self._layout(self.np_random)
        mujoco.mj_resetData(self.model, self.data)
        self.goal, self.obstacle = goal, obstacle
        self.model.site("goal").pos[:2] = goal
        self.model.body("obstacle").pos[:2] = obstacle
        self.data.qpos[:] = [*pusher, *puck]
        self.data.ctrl[:] = pusher
        mujoco.mj_forward(self.model, self.data)
        return self._obs(), {"is_success": False}

    def _obs(self) -> np.ndarray:
        q, v = self.data.qpos, self.data.qvel
        return np.concatenate([q[:2], v[:2], q[2:4], v[2:4], self.goal, self.obstacle]).astype(np.float32)

    def _touching_obstacle(self) -> bool:
        obstacle, movers = self._ids["obstacle"], (self._ids["pusher"], self._ids["puck"])
        for g1, g2 in self.data.contact.geom[: self.data.ncon].tolist():
            if (g1 == obstacle and g2 in movers) or (g2 == obstacle and g1 in movers):
                return True
        return False

    def step(self, action):
        self.data.ctrl[:] = np.clip(np.asarray(action, dtype=np.float64).reshape(2), -WORKSPACE, WORKSPACE)
        collided = False
        for _ in range(FRAME_SKIP):
            mujoco.mj_step(self.model, self.data)
            collided = collided or self._touching_obstacle()
        success = not collided and float(np.linalg.norm(self.data.qpos[2:4] - self.goal)) < self.success_radius
        info = {"is_success": success}
        if collided:
            info.update(failure_reason="obstacle_collision")
        return self._obs(), float(success), bool(success or collided), False, info

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.model, self.height, self.width)
        self._renderer.update_scene(self.data, camera="top")
        return self._renderer.render()

    def close(self):
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


def make_puck(max_episode_steps: int = 100, **kwargs) -> gym.Env:
    """The nominal task for ``max_episode_steps`` steps of 0.05 s; ``kwargs`` go to PuckPushEnv (render_mode, ...)."""
    return gym.wrappers.TimeLimit(PuckPushEnv(**kwargs), int(max_episode_steps))


def heavy_puck(severity: float = 0.0, **kwargs) -> gym.Env:
    """Shift: a stickier puck, its slide joints' damping × (1 + 19·severity): it yields more slowly to the push."""
    return make_puck(puck_damping=0.6 * (1.0 + 19.0 * check_severity(severity, "heavy_puck")), **kwargs)


def obstacle_in_path(severity: float = 0.0, **kwargs) -> gym.Env:
    """Shift: the obstacle moved from beside the puck→goal segment toward its midpoint, by 80 % of its offset at severity 1."""
    return make_puck(obstacle_shift=0.8 * check_severity(severity, "obstacle_in_path"), **kwargs)


class Shove(gym.Wrapper):
    """A horizontal force of 0.3·severity N on the puck for 4 steps (0.2 s), once, at a random step in [8, 20)."""

    def __init__(self, env: gym.Env, severity: float):
        super().__init__(env)
        self.force, self.rng = 0.3 * severity, np.random.default_rng()
        self.at, self.t, self.direction = -1, 0, np.zeros(2)

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            self.rng = np.random.default_rng([int(seed), 17])
        self.at, self.t = int(self.rng.integers(8, 20)), 0
        angle = float(self.rng.uniform(0.0, 2.0 * np.pi))
        self.direction = np.array([np.cos(angle), np.sin(angle)])
        return self.env.reset(seed=seed, options=options)

    def step(self, action):
        inner = self.env.unwrapped
        body = inner.model.body("puck").id
        inner.data.xfrc_applied[body, :2] = self.force * self.direction if self.at <= self.t < self.at + 4 else 0.0
        self.t += 1
        return self.env.step(action)


def shove(severity: float = 0.0, **kwargs) -> gym.Env:
    """Shift: the puck is shoved once mid-episode (Shove)."""
    return Shove(make_puck(**kwargs), check_severity(severity, "shove"))


def obs_noise(severity: float = 0.0, **kwargs) -> gym.Env:
    """Shift: noisy observations, std 0.01·severity m (or m/s) on every entry, seeded with the episode."""
    return SeededObservationNoise(make_puck(**kwargs), 0.01 * check_severity(severity, "obs_noise"), dtype=np.float32)
