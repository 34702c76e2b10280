"""gymnasium wrappers for a user's env factory: what an env written without fiper in mind lacks of fiper's labels.

fiper reads success from ``info['success']`` (else ``info['is_success']``) and labels an episode that terminated without
it a failure ``terminated`` at that step (``fiper.collection.episode_labels``). An env whose termination means the goal
was reached (gymnasium's ``MountainCarContinuous-v0``: the car at the flag) says so with ``TerminationIsSuccess``; one
whose task is to last until its time limit (balancing, walking: gymnasium's ``InvertedPendulum-v5``, ``Hopper-v5``) with
``TimeLimitIsSuccess``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym


def _refuse_own_success(info: Any, wrapper: str, replacement: str) -> None:
    said = [key for key in ("success", "is_success") if key in info]
    if said:
        raise ValueError(f"the env already reports info[{said[0]!r}]; {wrapper} would replace it with {replacement}: leave "
                         "the wrapper out, since fiper reads the env's own key")


class TerminationIsSuccess(gym.Wrapper):
    """``info['success'] = terminated`` at every step: the env ends its episodes (``terminated``) only on reaching the goal,
    and its time limit truncates them, so an episode is a success exactly when it terminated.

    An env that also terminates on a failure (a fall, a collision) says which with ``info['success']`` of its own; this
    wrapper would call those failures successes, so it refuses to override a ``success`` or ``is_success`` the env gives.
    """

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        _refuse_own_success(info, "TerminationIsSuccess", "`terminated`")
        return obs, reward, terminated, truncated, {**info, "success": bool(terminated)}


class TimeLimitIsSuccess(gym.Wrapper):
    """``info['success'] = truncated and not terminated`` at every step: the task is to last (keep a pole up, keep
    walking), the env ends an episode (``terminated``) when that fails, and reaching the time limit is the success. A
    fall stays fiper's default failure ``terminated`` at its step, one an alarm can precede."""

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        _refuse_own_success(info, "TimeLimitIsSuccess", "`truncated and not terminated`")
        return obs, reward, terminated, truncated, {**info, "success": bool(truncated and not terminated)}
