"""Helpers shared by the environment tests (imported as a module; fixtures live in conftest)."""

from __future__ import annotations

import numpy as np
import pytest

import envs


def run_expert(env, seed: int, max_steps: int | None = None):
    """Roll out the task's expert; returns (observations, actions, final info)."""
    expert = envs.make_expert(env)
    obs, info = env.reset(seed=seed)
    expert.reset(seed)
    observations, actions = [obs], []
    done = False
    while not done and (max_steps is None or len(actions) < max_steps):
        action = expert.act(obs, info)
        obs, _, terminated, truncated, info = env.step(action)
        observations.append(obs)
        actions.append(action)
        done = terminated or truncated
    return observations, actions, info


def wiggle(env, n: int, amplitude: float = 0.05) -> list[np.ndarray]:
    """A fixed open-loop action sequence around the agent's start (deterministic, task-agnostic)."""
    base = env.unwrapped.hold_action()
    k = env.unwrapped.position_dims
    out = []
    for t in range(n):
        a = base.copy()
        a[:k] += amplitude * np.array([np.cos(0.5 * t), np.sin(0.3 * t), 0.5 * np.sin(0.2 * t)][:k])
        out.append(a)
    return out


def needs_gl():
    ok, reason = envs.gl_status()
    if not ok:
        pytest.skip(reason)
