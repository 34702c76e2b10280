"""MuJoCo stress-test tasks for fiper: push-T, sorting, pick-and-place (gymnasium API).

    import envs
    env = envs.make_env("push_t", obs_mode="lowdim", shifts=[("obstacle", 0.7)])
    expert = envs.make_expert(env)
    obs, info = env.reset(seed=0); expert.reset(0)
    obs, reward, terminated, truncated, info = env.step(expert.act(obs, info))

Depends on mujoco, gymnasium and numpy only. On Linux without a display MUJOCO_GL defaults to
'egl' so image observations render offscreen; low-dim use never creates a GL context.
Tasks are also registered with gymnasium as fiper/PushT-v0, fiper/Sort-v0, fiper/PickPlace-v0.
"""

import logging
import os
import sys

if sys.platform.startswith("linux") and not os.environ.get("DISPLAY") and "mujoco" not in sys.modules:
    os.environ.setdefault("MUJOCO_GL", "egl")
logging.getLogger("OpenGL.acceleratesupport").setLevel(logging.WARNING)  # PyOpenGL's import-time notice

from envs.base import CONTROL_HZ, TaskEnv  # noqa: E402
from envs.experts.base import Expert  # noqa: E402
from envs.registry import TASKS, make_env, make_expert, register_gym, task_entry  # noqa: E402
from envs.render import gl_status  # noqa: E402
from envs.shifts import SHIFTS, parse_shifts  # noqa: E402

register_gym()

__all__ = ["CONTROL_HZ", "SHIFTS", "TASKS", "Expert", "TaskEnv", "gl_status", "make_env", "make_expert", "parse_shifts", "task_entry"]
