"""Shared MuJoCo task environment: 10 Hz position control, shifts, labels, low-dim/image observations.

Time line of one episode (t = env step index, also the row of a recorded episode)::

    reset(seed) -> obs_0
    step(a_0)   -> obs_1, info (labels after transition 0)   # failure_step = 0 if it happened here
    ...
    step(a_t)   -> obs_{t+1}, info                            # truncated at t = max_episode_steps-1

A task subclass supplies the model file, its initial-state distribution, observation features,
the mapping from actions to actuator controls, and its success / failure predicates.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any, ClassVar

import gymnasium as gym
import mujoco
import numpy as np

from envs.labels import EpisodeLabels
from envs.render import Camera
from envs.shifts import SHIFTS, Shift, parse_shifts, shift_label, shift_rng

CONTROL_HZ = 10
OBS_MODES = ("lowdim", "image")
OBSTACLE_DIM = 4  # obs['obstacle'] in low-dim mode: present flag, centre x, y (m), radius (m)


class TaskEnv(gym.Env, abc.ABC):
    """Base class of the fiper MuJoCo tasks (see docs/envs.md for the per-task contract)."""

    metadata: ClassVar[dict] = {"render_modes": ["rgb_array"], "render_fps": CONTROL_HZ}

    # ---- declared by each task -----------------------------------------------------------
    task_name: ClassVar[str]
    asset: ClassVar[str]  # file in envs/assets
    default_max_steps: ClassVar[int]
    agent_dim: ClassVar[int]  # size of obs['agent_pos']
    object_dim: ClassVar[int]  # size of obs['object']
    position_dims: ClassVar[int]  # leading action dims that are Cartesian position targets
    action_low: ClassVar[Sequence[float]]
    action_high: ClassVar[Sequence[float]]
    object_bodies: ClassVar[tuple[str, ...]]
    object_geoms: ClassVar[tuple[str, ...]]
    camera_name: ClassVar[str]
    camera_target: ClassVar[Sequence[float]]  # point the camera looks at (for the camera shift)
    camera_up: ClassVar[Sequence[float]]
    push_window: ClassVar[tuple[int, int]]  # env steps in which the 'push' shift may strike
    push_speed: ClassVar[float]  # m/s of the push at severity 1
    table_half: ClassVar[float] = 0.3

    def __init__(
        self,
        obs_mode: str = "lowdim",
        shifts: Any = None,
        *,
        render_mode: str | None = None,
        image_size: int = 96,
        render_size: int = 256,
        max_episode_steps: int | None = None,
        terminate_on_success: bool = True,
        terminate_on_failure: bool = True,
        scene_obs: bool = False,
    ):
        if obs_mode not in OBS_MODES:
            raise ValueError(f"obs_mode must be one of {OBS_MODES}, got {obs_mode!r}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        if max_episode_steps is not None and max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be >= 1, got {max_episode_steps}")
        if not isinstance(scene_obs, bool):
            raise ValueError(f"scene_obs must be true or false (an image observation also carries the 'obstacle' key), got {scene_obs!r}")
        self.obs_mode, self.render_mode, self.scene_obs = obs_mode, render_mode, scene_obs
        self.image_size, self.render_size = int(image_size), int(render_size)
        self.max_episode_steps = int(max_episode_steps or self.default_max_steps)
        self.terminate_on_success, self.terminate_on_failure = terminate_on_success, terminate_on_failure
        self.shifts = parse_shifts(shifts)

        self._spec_text = resources.files("envs.assets").joinpath(self.asset).read_text()
        self._nominal_model = self._compile([], {})
        self._use_model(self._nominal_model)
        self.dt = self.model.opt.timestep * self.n_substeps  # seconds per env step: the control period rollouts record
        self.action_space = gym.spaces.Box(np.asarray(self.action_low, np.float32), np.asarray(self.action_high, np.float32), dtype=np.float32)
        self._low, self._high = np.asarray(self.action_low, np.float64), np.asarray(self.action_high, np.float64)
        vec = lambda n: gym.spaces.Box(-10.0, 10.0, (n,), np.float32)  # noqa: E731  (metres / unit features)
        spaces = {"agent_pos": vec(self.agent_dim)}
        if obs_mode == "image":
            spaces["image"] = gym.spaces.Box(0, 255, (self.image_size, self.image_size, 3), np.uint8)
            if scene_obs:  # what a scene detector beside the camera would report, for a scene-aware score
                spaces["obstacle"] = vec(OBSTACLE_DIM)
        else:
            spaces["object"] = vec(self.object_dim)
            spaces["obstacle"] = vec(OBSTACLE_DIM)
        self.observation_space = gym.spaces.Dict(spaces)
        self._camera: Camera | None = None
        self._video: Camera | None = None
        self._active: list[Shift] = []
        self._init: Mapping[str, Any] = {}
        self._labels = EpisodeLabels()
        self._t, self._seed, self._needs_reset = 0, -1, True

    # ---- hooks every task implements -----------------------------------------------------
    @abc.abstractmethod
    def _bind_model(self) -> None:
        """Cache ids and addresses of the freshly loaded ``self.model``."""

    @abc.abstractmethod
    def _sample_init(self, rng: np.random.Generator, ood: float) -> dict[str, Any]:
        """Draw the initial state; ``ood`` in [0, 1] moves object poses outside the training range."""

    @abc.abstractmethod
    def _apply_init(self, init: Mapping[str, Any]) -> None:
        """Write the initial state into ``self.data`` (qpos, ctrl)."""

    @abc.abstractmethod
    def _agent_obs(self) -> np.ndarray: ...

    @abc.abstractmethod
    def _object_obs(self) -> np.ndarray: ...

    @abc.abstractmethod
    def _set_ctrl(self, action: np.ndarray) -> None: ...

    @abc.abstractmethod
    def agent_position(self) -> np.ndarray:
        """Current Cartesian position of the end-effector / pusher (``position_dims``,)."""

    @abc.abstractmethod
    def hold_action(self) -> np.ndarray:
        """The action that keeps the agent where it is."""

    @abc.abstractmethod
    def task_success(self) -> bool: ...

    @abc.abstractmethod
    def irrecoverable_event(self) -> str:
        """Reason of an irrecoverable event in the current state, or '' if none."""

    @abc.abstractmethod
    def obstacle_segments(self, init: Mapping[str, Any]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Straight start-to-goal paths (xy) an obstacle may be put on."""

    @abc.abstractmethod
    def obstacle_clearance(self, xy: np.ndarray, init: Mapping[str, Any]) -> float:
        """Distance from ``xy`` to anything an obstacle must not overlap at the start or goal."""

    obstacle_offset: ClassVar[float] = 0.12  # obstacle's distance from the path at severity 0 (m)

    def obstacle_height(self, severity: float) -> float:
        return 0.05

    # ---- model management ----------------------------------------------------------------
    def _compile(self, shifts: list[Shift], init: Mapping[str, Any]) -> mujoco.MjModel:
        spec = mujoco.MjSpec.from_string(self._spec_text)
        size = max(self.image_size, self.render_size if self.render_mode else 0)
        spec.visual.global_.offwidth = spec.visual.global_.offheight = size
        for shift in shifts:
            shift.edit_spec(spec, init)
        return spec.compile()

    def _use_model(self, model: mujoco.MjModel) -> None:
        if getattr(self, "model", None) is model:
            return
        self.model, self.data = model, mujoco.MjData(model)
        self.n_substeps = int(round(1.0 / (CONTROL_HZ * model.opt.timestep)))
        self._obstacle_geom = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, "obstacle")
        for cam in (getattr(self, "_camera", None), getattr(self, "_video", None)):
            if cam is not None:
                cam.set_model(model)
        self._bind_model()

    def free_dof(self, body: str) -> int:
        """First velocity index of the free joint of ``body``."""
        bid = self.model.body(body).id
        return int(self.model.jnt_dofadr[self.model.body_jntadr[bid]])

    def free_qpos(self, body: str) -> int:
        bid = self.model.body(body).id
        return int(self.model.jnt_qposadr[self.model.body_jntadr[bid]])

    # ---- gymnasium API -------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: Mapping[str, Any] | None = None):
        super().reset(seed=seed)
        options = dict(options or {})
        if "shifts" in options:
            self.shifts = parse_shifts(options.pop("shifts"))
        if options:
            raise ValueError(f"unknown reset options {sorted(options)}; the only option is 'shifts'")
        self._seed = int(seed) if seed is not None else int(self.np_random.integers(2**31 - 1))
        self._active = [SHIFTS[n](s, shift_rng(self._seed, "shift/" + n), self) for n, s in self.shifts if s > 0]
        ood = max((s.init_pose_ood() for s in self._active), default=0.0)
        init = self._sample_init(shift_rng(self._seed, "init"), ood)
        editing = [s for s in self._active if s.edits_model]
        self._use_model(self._compile(editing, init) if editing else self._nominal_model)
        mujoco.mj_resetData(self.model, self.data)
        self._apply_init(init)
        mujoco.mj_forward(self.model, self.data)
        self._init = init
        for shift in self._active:
            shift.on_reset()
        self._labels = EpisodeLabels()
        self._t, self._needs_reset = 0, False
        return self._observe(), self._info()

    def step(self, action):
        if self._needs_reset:
            raise RuntimeError("call reset() before step(); the episode has ended or never started")
        action = self._check_action(action)
        for shift in self._active:
            action = shift.transform_action(action)
        self._set_ctrl(action)
        t = self._t
        for shift in self._active:
            shift.before_physics(t)
        mujoco.mj_step(self.model, self.data, nstep=self.n_substeps)
        self._t += 1
        self._labels.update(t, self.task_success(), self.irrecoverable_event())
        at_limit = self._t >= self.max_episode_steps
        timed_out = at_limit and not self._labels.decided
        if timed_out:
            self._labels.timeout(t)
        terminated = (self._labels.success and self.terminate_on_success) or (
            self._labels.failure and not timed_out and self.terminate_on_failure
        )
        # an outcome decided earlier but not terminated on (terminate_on_*=False) still ends at the limit
        truncated = at_limit and not terminated
        self._needs_reset = terminated or truncated
        return self._observe(), float(self._labels.success), terminated, truncated, self._info()

    def _check_action(self, action) -> np.ndarray:
        a = np.array(action, dtype=np.float64)
        if a.shape != self._low.shape:
            raise ValueError(f"{self.task_name}: action must have shape {self._low.shape} ({self.action_doc}), got {a.shape}")
        if not np.isfinite(a).all():
            raise ValueError(f"{self.task_name}: action has non-finite entries {a}")
        return np.minimum(np.maximum(a, self._low), self._high)

    def _observe(self) -> dict[str, np.ndarray]:
        obs = {"agent_pos": self._agent_obs().astype(np.float32)}
        if self.obs_mode == "image":
            if self._camera is None:
                self._camera = Camera(self.model, self.camera_name, self.image_size, self.image_size)
            obs["image"] = self._camera.render(self.data)
            if self.scene_obs:
                obs["obstacle"] = self._obstacle_obs()
        else:
            obs["object"] = self._object_obs().astype(np.float32)
            obs["obstacle"] = self._obstacle_obs()
        for shift in self._active:
            obs = shift.transform_obs(obs)
        return obs

    def _info(self) -> dict[str, Any]:
        label, severity = shift_label(self.shifts)
        return {**self._labels.as_info(), "step": self._t, "seed": self._seed, "shift": label, "severity": severity}

    def render(self) -> np.ndarray | None:
        """RGB frame (render_size x render_size) from the observation camera, for videos."""
        if self.render_mode != "rgb_array":
            return None
        if self._video is None:
            self._video = Camera(self.model, self.camera_name, self.render_size, self.render_size)
        return self._video.render(self.data)

    def close(self) -> None:
        for attr in ("_camera", "_video"):
            cam = getattr(self, attr, None)
            if cam is not None:
                cam.close()
                setattr(self, attr, None)

    def describe(self) -> dict[str, Any]:
        """JSON-friendly description of the task configuration (stored with recorded data)."""
        return {
            "task": self.task_name, "obs_mode": self.obs_mode, "control_hz": CONTROL_HZ,
            "timestep": float(self._nominal_model.opt.timestep), "n_substeps": self.n_substeps,
            "max_episode_steps": self.max_episode_steps, "image_size": self.image_size,
            "action": self.action_doc, "shifts": [[n, s] for n, s in self.shifts],
        }

    # ---- privileged read-outs (experts, tests, shifts) -----------------------------------
    @property
    def elapsed_steps(self) -> int:
        return self._t

    @property
    def labels(self) -> EpisodeLabels:
        return self._labels

    @property
    def init_state(self) -> Mapping[str, Any]:
        return self._init

    @property
    def active_shifts(self) -> list[Shift]:
        return list(self._active)

    def _obstacle_obs(self) -> np.ndarray:
        """What a scene-state estimator reports besides the task objects: [present, x, y, radius]
        of the first obstacle on the table, zeros when there is none (always, in the demonstrations)."""
        found = self.scene_obstacles()
        if not found:
            return np.zeros(OBSTACLE_DIM, np.float32)
        o = found[0]
        return np.array([1.0, o["center"][0], o["center"][1], o["radius"]], np.float32)

    def scene_obstacles(self) -> list[dict[str, Any]]:
        """This episode's obstacles (centre in env units, radius), e.g. for a keep-out steering reward."""
        return [o for shift in self._active for o in shift.obstacles()]

    def touching(self, geom_a: int, geoms_b: Sequence[int]) -> bool:
        """Whether geom ``geom_a`` has a contact with any geom in ``geoms_b``."""
        n = self.data.ncon
        if not n:
            return False
        for g1, g2 in self.data.contact.geom[:n].tolist():  # a handful of contacts: plain Python is fastest
            if (g1 == geom_a and g2 in geoms_b) or (g2 == geom_a and g1 in geoms_b):
                return True
        return False

    @property
    def obstacle_geom(self) -> int:
        """Geom id of the obstacle shift's cylinder, -1 when there is none."""
        return self._obstacle_geom

    def obstacle_touched(self) -> bool:
        if self._obstacle_geom < 0 or not self.data.ncon:
            return False
        return bool((self.data.contact.geom[: self.data.ncon] == self._obstacle_geom).any())

    action_doc: ClassVar[str] = ""
