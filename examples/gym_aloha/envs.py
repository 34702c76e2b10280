"""Env factories for gym-aloha (lerobot's ALOHA simulation): the nominal transfer-cube task and one factory per shift.

``gym_aloha/AlohaTransferCube-v0``: two ViperX arms on dm_control's MuJoCo bindings, 14 absolute joint targets per step
(6 joints and a normalised finger opening per arm), 0.02 s per step (ten 2 ms physics steps), 300 steps. The right arm
must lift the red cube and hand it to the left; gym-aloha reports ``info['is_success']`` and ends the episode once the
left fingers hold it off the table. What the factory changes in gym-aloha 0.1.5, and why (README.md):

- ``obs_type='state'`` (the default here; gym-aloha's own raises NotImplementedError): ``{'agent_pos': (14,), 'cube':
  (7,)}``, the measured joints and the cube's position and quaternion; nothing is rendered.
- ``obs_type='pixels_agent_pos'``: gym-aloha's ``{'pixels': {'top': (H, W, 3)}, 'agent_pos': (14,)}``, rendered at
  ``observation_height`` x ``observation_width`` (gym-aloha declares that size but always renders 480 x 640, and
  renders two more cameras it throws away), without shadows and multisampling (10 times faster on a CPU).
- The action space: gym-aloha declares [-1, 1] for every entry, but the arms take joint angles up to ±3.14 rad; the
  factory declares the actuators' ranges (fingers [0, 1]), so fiper does not clip the expert's actions to [-1, 1].
- ``control_period_s``: the dm_control environment's ``control_timestep()``, 0.02 s, which AlohaEnv does not declare.
- A dropped cube (lifted 5 cm, back on the table) ends the episode as a failure ``dropped`` at that step (``TaskLabels``;
  ``label_drops=False`` leaves gym-aloha's labels alone: then every failure is a timeout at step 299).
- ``success='lift'``: the episode succeeds, and ends, once the right fingers hold the cube 5 cm up (gym-aloha's reward
  2), the first half of the handover; a looser task for a policy this CPU budget trains (README.md). The default,
  ``'transfer'``, is gym-aloha's.

Each shift factory is named in ``launch.stress factories.<shift>=`` and called as ``f(severity=..., **env.kwargs)``
with severity in [0, 1], 0 being the nominal task.
"""

from __future__ import annotations

import collections

import gymnasium as gym
import numpy as np

from examples.seeded_noise import SeededObservationNoise
from fiper.env_factory import check_severity

ENV_ID = "gym_aloha/AlohaTransferCube-v0"
OBS_TYPES = ("state", "pixels_agent_pos")
SUCCESS = ("transfer", "lift")


def make_aloha(obs_type: str = "state", observation_width: int = 64, observation_height: int = 64, label_drops: bool = True,
               success: str = "transfer", **kwargs) -> gym.Env:
    """The nominal task; ``kwargs`` go to gym.make (render_mode, visualization_width, visualization_height, ...)."""
    try:
        import gym_aloha  # noqa: F401  (registers gym_aloha/AlohaTransferCube-v0)
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(f"examples/gym_aloha needs gym-aloha (lerobot's ALOHA env): pip install gym-aloha in an "
                                  f"environment of its own, it needs mujoco<3.9 (missing module {err.name!r}; "
                                  "examples/gym_aloha/README.md)") from err
    if success not in SUCCESS:
        raise ValueError(f"success={success!r}: {' or '.join(map(repr, SUCCESS))} (the handover, gym-aloha's, or the lift "
                         "that starts it)")
    if obs_type not in OBS_TYPES:
        raise ValueError(f"obs_type={obs_type!r}: this example runs {OBS_TYPES[0]!r} (joints and cube pose, the default) or "
                         f"{OBS_TYPES[1]!r} (joints and the top camera); gym-aloha's 'pixels' has no joints to hold on")
    env = gym.make(ENV_ID, obs_type="pixels_agent_pos", observation_width=observation_width,
                   observation_height=observation_height, **kwargs)
    aloha = env.unwrapped
    dm_env = aloha._env
    physics, task = dm_env.physics, dm_env.task
    physics.model.vis.quality.shadowsize = 0  # before the first render builds dm_control's GL context
    physics.model.vis.quality.offsamples = 0
    render = obs_type == "pixels_agent_pos"

    def get_observation(physics):  # gym-aloha's, rendering only the camera it returns, at the declared size
        images = {"top": physics.render(height=observation_height, width=observation_width, camera_id="top")} if render else {}
        return collections.OrderedDict(qpos=task.get_qpos(physics), qvel=task.get_qvel(physics),
                                       env_state=task.get_env_state(physics), images=images)

    task.get_observation = get_observation
    if obs_type == "state":
        aloha._format_raw_obs = lambda raw: {"agent_pos": raw["qpos"], "cube": raw["env_state"].copy()}
        aloha.observation_space = gym.spaces.Dict({
            "agent_pos": aloha.observation_space["agent_pos"],
            "cube": gym.spaces.Box(-np.inf, np.inf, (7,), np.float64)})
    ranges = physics.model.actuator_ctrlrange
    low = np.concatenate([ranges[0:6, 0], [0.0], ranges[8:14, 0], [0.0]]).astype(np.float32)
    high = np.concatenate([ranges[0:6, 1], [1.0], ranges[8:14, 1], [1.0]]).astype(np.float32)
    aloha.action_space = gym.spaces.Box(low, high, dtype=np.float32)
    aloha.control_period_s = float(dm_env.control_timestep())
    return TaskLabels(env, success, label_drops) if label_drops or success != "transfer" else env


def cube_far(severity: float = 0.0, **kwargs) -> gym.Env:
    """Shift: the cube starts up to 0.1·severity m beyond the demonstrations' range (x in [0, 0.2] m, y in
    [0.4, 0.6] m), on a side drawn from the episode's seed (farther from the right arm, nearer to it, or to either
    side)."""
    severity = check_severity(severity, "cube_far")
    return CubeStart(make_aloha(**kwargs), 0.1 * severity)


def slippery_cube(severity: float = 0.0, **kwargs) -> gym.Env:
    """Shift: the cube's sliding friction × (1 − 0.8·severity) (1.0 in gym-aloha): the fingers' grip slips."""
    severity = check_severity(severity, "slippery_cube")
    env = make_aloha(**kwargs)
    model = env.unwrapped._env.physics.model
    model.geom_friction[model.name2id("red_box", "geom"), 0] *= 1.0 - 0.8 * severity
    return env


def obs_noise(severity: float = 0.0, **kwargs) -> gym.Env:
    """Shift: a noisy cube tracker, std 0.01·severity m on the cube's pose (``state`` observations) or 20·severity grey
    levels on the camera (``pixels_agent_pos``), seeded with the episode; the joints stay exact."""
    severity = check_severity(severity, "obs_noise")
    env = make_aloha(**kwargs)
    if "cube" in env.observation_space.spaces:
        return SeededObservationNoise(env, 0.01 * severity, key="cube")
    return CameraNoise(env, 20.0 * severity)


class CubeStart(gym.Wrapper):
    """Starts the cube ``reach`` m outside gym-aloha's range, on a side drawn from the episode's seed."""

    def __init__(self, env: gym.Env, reach: float):
        super().__init__(env)
        self.reach = float(reach)
        task = env.unwrapped._env.task
        original = task.initialize_episode

        def initialize_episode(physics):
            from gym_aloha.tasks import sim

            if self.reach > 0 and sim.BOX_POSE[0] is not None:
                side = self.side
                pose = np.array(sim.BOX_POSE[0], float)
                axis, sign = (0, 1.0) if side == 0 else (0, -1.0) if side == 1 else (1, 1.0) if side == 2 else (1, -1.0)
                edge = (0.2, 0.0, 0.6, 0.4)[side]
                pose[axis] = edge + sign * self.rng.uniform(0.0, self.reach)
                sim.BOX_POSE[0] = pose
            original(physics)

        task.initialize_episode = initialize_episode
        self.rng, self.side = np.random.default_rng(0), 0

    def reset(self, *, seed=None, options=None):
        self.rng = np.random.default_rng(None if seed is None else [int(seed), 13])
        self.side = int(self.rng.integers(4))
        return self.env.reset(seed=seed, options=options)


class CameraNoise(gym.ObservationWrapper):
    """Gaussian pixel noise of ``std`` grey levels on the top camera, seeded by the episode's seed."""

    def __init__(self, env: gym.Env, std: float):
        super().__init__(env)
        self.std, self.rng = float(std), np.random.default_rng(0)

    def reset(self, *, seed=None, options=None):
        self.rng = np.random.default_rng(None if seed is None else [int(seed), 11])
        return super().reset(seed=seed, options=options)

    def observation(self, observation):
        top = observation["pixels"]["top"]
        noisy = np.clip(top + self.rng.normal(0.0, self.std, top.shape), 0, 255).astype(np.uint8)
        return {**observation, "pixels": {"top": noisy}}


class TaskLabels(gym.Wrapper):
    """What gym-aloha does not say: a cube lifted ``LIFTED`` m above its rest height and back on the table (its centre
    under ``DOWN`` m), or off it, ends the episode (``info['failure_reason']`` 'dropped' or 'off_table',
    ``info['failure_step']`` that step; gym-aloha only ends an episode on success); with ``success='lift'`` the cube
    held ``LIFTED`` m up by the right fingers alone (gym-aloha's reward 2) is a success that ends the episode."""

    REST, LIFTED, DOWN = 0.02, 0.05, 0.03

    def __init__(self, env: gym.Env, success: str = "transfer", drops: bool = True):
        super().__init__(env)
        self.qpos = env.unwrapped._env.physics.data.qpos
        self.success, self.drops = success, drops
        self.lifted, self.t = False, 0

    def reset(self, **kwargs):
        self.lifted, self.t = False, 0
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        height = float(self.qpos[18])
        up = height > self.REST + self.LIFTED
        self.lifted |= up
        if self.success == "lift" and up and reward >= 2:
            info, terminated = {**info, "is_success": True}, True
        reason = "off_table" if height < -0.05 else "dropped" if self.lifted and height < self.DOWN else None
        if self.drops and reason and not info.get("is_success"):
            info = {**info, "failure_reason": reason, "failure_step": self.t}
            terminated = True
        self.t += 1
        return obs, reward, terminated, truncated, info
