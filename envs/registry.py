"""Task registry: short names, gymnasium ids, environment and expert factories."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import gymnasium as gym


@dataclass(frozen=True)
class TaskEntry:
    name: str
    gym_id: str
    env: str  # 'module:Class' of the environment
    expert: str  # 'module:Class' of the scripted expert, called as Class(env)
    summary: str


TASKS: dict[str, TaskEntry] = {
    e.name: e
    for e in (
        TaskEntry("push_t", "fiper/PushT-v0", "envs.tasks.push_t:PushTEnv", "envs.experts.push_t:PushTExpert",
                  "planar push of a T block to a target pose with a point pusher"),
        TaskEntry("sort", "fiper/Sort-v0", "envs.tasks.sort:SortEnv", "envs.experts.sort:SortExpert",
                  "push a red and a blue cube into the bins of their colour"),
        TaskEntry("pick_place", "fiper/PickPlace-v0", "envs.tasks.pick_place:PickPlaceEnv", "envs.experts.pick_place:PickPlaceExpert",
                  "pick a cube with a two-finger gripper and place it in a bin"),
    )
}


def _load(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def task_entry(name: str) -> TaskEntry:
    """The registry entry for a short name ('push_t') or gymnasium id ('fiper/PushT-v0')."""
    for entry in TASKS.values():
        if name in (entry.name, entry.gym_id):
            return entry
    known = ", ".join(f"{e.name} ({e.gym_id})" for e in TASKS.values())
    raise ValueError(f"unknown task {name!r}; known tasks: {known}")


def make_env(name: str, obs_mode: str = "lowdim", shifts: Any = None, **kwargs: Any):
    """Build a task by short name or gymnasium id, e.g. make_env('push_t', shifts=[('obstacle', 0.7)]).

    Returns the bare environment (no gymnasium wrappers; it enforces its own time limit).
    """
    entry = task_entry(name)
    return _load(entry.env)(obs_mode=obs_mode, shifts=shifts, **kwargs)


def make_expert(env, name: str | None = None):
    """The scripted expert of ``env``'s task (looked up from ``env.unwrapped.task_name``)."""
    task = name or getattr(env.unwrapped, "task_name", None)
    if task is None:
        raise ValueError(f"{type(env.unwrapped).__name__} is not a fiper task; pass expert=module:function for your own env")
    return _load(task_entry(task).expert)(env)


def register_gym() -> None:
    """Register every task with gymnasium (idempotent)."""
    for e in TASKS.values():
        if e.gym_id not in gym.registry:
            gym.register(id=e.gym_id, entry_point=e.env, max_episode_steps=None)
