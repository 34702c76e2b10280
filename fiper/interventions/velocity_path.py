"""Where a velocity-controlled robot's steered path starts, and how long each of its steps lasts.

Steering scores a chunk of velocity actions on the path the robot would follow, in the frame of the obstacles a
reward reads (``KeepOut`` centres, ``env.scene_obstacles()``): its measured position p_0 at the decision plus the
velocities integrated over the env's control period, p_t = p_0 + dt · Σ_{s ≤ t} v_s, with dt the control period times
the velocity one action unit commands (``FallbackContext.velocity_step``). The measured position is read from the
observation as the fallbacks read it (``FallbackContext.agent_pos_key``, ``agent_pos_dims``), the period from
``FallbackContext.control_period_s`` (seconds per env step; launch.stress and launch.act set it from
``fiper.control.period``), the unit from ``FallbackContext.velocity_scale`` (1: the actions are velocities in the
positions' units per second). A velocity steering that cannot know either is refused before anything runs: integrated
from 0 with a unit step, its path would lie wherever the velocities' units put it, not where the robot is. Position
actions need neither.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from fiper.interventions.context import FallbackContext


class VelocityFrame(NamedTuple):
    """The start (N, k) of each observation's path, in env units on the policy's device, and ``dt``, how far one action
    unit moves a position in one env step (the control period x the context's velocity_scale)."""

    start: Tensor
    dt: float

    def rows(self, n: int, rows: Tensor | None = None) -> Tensor:
        """The start, shaped (n or len(rows), 1, k) to broadcast over a block of particles (n, B, H, k)."""
        if self.start.shape[0] == 1:  # one position for every observation
            return self.start.expand(n, -1)[:, None, :]
        start = self.start if rows is None else self.start.index_select(0, rows)
        if start.shape[0] != n:
            raise ValueError(f"the velocity path's start holds {start.shape[0]} positions for {n} observations")
        return start[:, None, :]


def frame_problem(context: FallbackContext | None, setting: str) -> str | None:
    """Why a velocity steering (``setting``, where its settings live) cannot place its path with ``context``, or None."""
    head = (f"{setting}.velocity_actions=true scores each chunk on the path the robot would follow: its measured position "
            "plus the velocities integrated over the env's control period")
    if context is None:
        return (f"{head}, and no FallbackContext says where the position is measured or how long a step lasts: give "
                "context=FallbackContext(..., action_mode='velocity', agent_pos_key=<observation key>, "
                "control_period_s=<seconds per env step>)")
    missing = []
    if context.agent_pos_key is None:
        missing.append("the observation key measuring the position (context.agent_pos_key=<key>, with "
                       "context.agent_pos_dims=[...] picking its entries)")
    if context.control_period_s is None:
        missing.append("the seconds per env step (FallbackContext control_period_s=<seconds>; launch.stress and "
                       "launch.act set it from the env, or from env.control_period_s=<seconds>)")
    if not missing:
        return None
    return f"{head}, and it lacks {' and '.join(missing)}; integrated from 0 the path would not be where the robot is"


def check_start_measured(context: FallbackContext, obs: Mapping[str, Any], setting: str) -> None:
    """A ValueError naming ``context.agent_pos_key`` when ``obs`` (an env's reset observation) does not measure the
    position a velocity steering (``setting``) integrates from."""
    if context.agent_position(obs) is None:
        keys = {k: tuple(np.shape(v)) for k, v in obs.items()}
        raise ValueError(f"{setting}.velocity_actions=true integrates the velocities from the robot's measured position, "
                         f"but the observation has no key {context.agent_pos_key!r} (it has {keys}): name the key that "
                         "measures the positions the action entries drive, context.agent_pos_key=<key> "
                         "(context.agent_pos_dims=[...] picking its entries, in the order of context.position_dims)")


def velocity_frame(context: FallbackContext | None, obs: Mapping[str, Any], device: torch.device | str) -> VelocityFrame:
    """The frame of one decision: the position measured in ``obs`` (one host-to-device copy of k numbers, before sampling)
    and the control period; a ValueError naming the setting when either is unknown."""
    problem = frame_problem(context, "the steering")
    if problem:
        raise ValueError(problem)
    pos = context.agent_position(obs)
    if pos is None:
        raise ValueError(f"the steering integrates velocities from the measured position, but this observation has no "
                         f"key {context.agent_pos_key!r} (context.agent_pos_key)")
    start = torch.as_tensor(np.asarray(pos, dtype=np.float32)[None]).to(device, non_blocking=True)
    return VelocityFrame(start, float(context.velocity_step))


def recorded_starts(context: FallbackContext, rows: np.ndarray) -> np.ndarray:
    """The positions (decisions, k) measured in a store's recorded observations ``rows`` (decisions, ...) of key
    ``context.agent_pos_key`` at the decisions' env steps: where each executed velocity chunk started (NaN where the
    step's observation could not be read: the recorder stores it as NaN)."""
    out = np.full((len(rows), len(context.position_dims)), np.nan)
    for i, row in enumerate(np.asarray(rows, dtype=np.float64)):
        if np.isfinite(row).all():
            out[i] = context.agent_position({context.agent_pos_key: row})
    return out


def velocity_gradient(grad: Tensor, dt: float) -> Tensor:
    """d reward / d velocity from d reward / d position (..., H, k): position t sums dt · v_s over s ≤ t."""
    return grad.flip(-2).cumsum(-2).flip(-2) * dt
