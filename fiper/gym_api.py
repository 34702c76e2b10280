"""The gymnasium calls fiper makes on a user's env, checked: ``reset`` must return ``(obs, info)`` and ``step``
``(obs, reward, terminated, truncated, info)`` with a dict ``info``. An env of the old gym API (``reset`` returning the
observation alone, ``step`` four values) would otherwise fail with an unpacking error, or be misread quietly."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from fiper.env_factory import SetupError, add_gl_note

OLD_API = ("the old gym API? Return gymnasium's tuples from the env (reset: obs, info; step: done split into terminated "
           "and truncated), or convert a gym 0.21 env with shimmy: gymnasium.make('GymV21Environment-v0', env=<your env>)")


def checked_info(info: Any, seed: int, step: int | None = None) -> Mapping[str, Any]:
    """The env's ``info`` as it is when a dict; anything else (a step returning None) is an error naming the fix."""
    if isinstance(info, Mapping):
        return info
    where = "reset" if step is None else f"step {step}"
    raise SetupError(f"the env's {where} of seed {seed} returned info of type {type(info).__name__}, not a dict: gymnasium's "
                     "reset returns (obs, info) and step (obs, reward, terminated, truncated, info); return {} when there is "
                     "nothing to report")


def reset_env(env: Any, seed: int, options: Mapping[str, Any] | None = None) -> tuple[Any, Mapping[str, Any]]:
    """``env.reset(seed=seed)`` as ``(obs, info)``, checked."""
    try:
        result = env.reset(seed=seed) if options is None else env.reset(seed=seed, options=dict(options))
    except Exception as err:  # an env that renders at reset (a camera key) without an OpenGL backend
        add_gl_note(err)
        raise
    if not (isinstance(result, tuple) and len(result) == 2):
        got = f"a {len(result)}-tuple" if isinstance(result, tuple) else f"a {type(result).__name__}"
        raise SetupError(f"the env's reset(seed={seed}) returned {got}, not (obs, info): {OLD_API}")
    return result[0], checked_info(result[1], seed)


def in_space_dtype(action: Any, space: Any) -> Any:
    """A numpy float ``action`` in the float dtype of ``space`` (a float32 ``Box``): fiper computes actions in float64,
    and an env whose ``step`` asserts ``action_space.contains(action)`` (gym-xarm's) refuses a float64 array. Anything
    else (a torch tensor, an integer space) is passed on as it is."""
    dtype = getattr(space, "dtype", None)
    if (isinstance(action, np.ndarray) and action.dtype.kind == "f" and dtype is not None
            and np.dtype(dtype).kind == "f" and action.dtype != dtype):
        return action.astype(dtype)
    return action


def step_env(env: Any, action: Any, seed: int, step: int) -> tuple[Any, bool, bool, Mapping[str, Any]]:
    """``env.step(action)`` as ``(obs, terminated, truncated, info)``, checked (the reward is not read); a float action
    is given in the action space's float dtype (``in_space_dtype``)."""
    try:
        result = env.step(in_space_dtype(action, getattr(env, "action_space", None)))
    except Exception as err:
        add_gl_note(err)
        raise
    if not (isinstance(result, tuple) and len(result) == 5):
        got = f"{len(result)} values" if isinstance(result, tuple) else f"a {type(result).__name__}"
        old = " (obs, reward, done, info)" if isinstance(result, tuple) and len(result) == 4 else ""
        raise SetupError(f"the env's step {step} of seed {seed} returned {got}{old}, not (obs, reward, terminated, truncated, "
                         f"info): {OLD_API}")
    obs, _, terminated, truncated, info = result
    return obs, terminated, truncated, checked_info(info, seed, step)
