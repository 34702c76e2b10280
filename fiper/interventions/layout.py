"""The action layout a steering part reads against the one its fallbacks are told (FallbackContext), checked before
anything runs: position entries, heights it may not be given, and velocities (with where their paths start)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fiper.interventions.context import FallbackContext
from fiper.interventions.velocity_path import check_start_measured, frame_problem


def check_steering_layout(response: Any, context: FallbackContext | None, setting: str,
                          note: Callable[[str], None] = print, obs: Mapping[str, Any] | None = None) -> None:
    """A steering part must read the action entries the fallbacks' layout names as positions, integrated when they are
    velocities: else its keep-out reward measures the wrong entries, silently. A ValueError naming ``setting`` (where
    the steering's settings live, e.g. response_configs.steer.steering) and the fix; a reward that may read heights it
    is not given gets a ``note``. A velocity steering needs the context's measured position and control period
    (``fiper.interventions.velocity_path``), and, given ``obs`` (the env's reset observation), that it measures the
    position. Checked once per steering and layout (``MonitoredPolicy`` checks what no launcher did)."""
    steering = getattr(response, "steering", None)
    velocity = bool(getattr(getattr(steering, "config", None), "velocity_actions", False))
    if velocity and context is None:
        raise ValueError(frame_problem(None, setting))
    if steering is None or context is None or getattr(steering, "checked_layout", None) == _layout(context):
        return
    dims = list(steering.config.position_dims)
    if not set(dims) <= set(context.position_dims):
        raise ValueError(f"{setting}.position_dims={dims} are not position entries of the action (context.position_dims="
                         f"{list(context.position_dims)}): the reward would read other entries as positions in the obstacles' "
                         f"frame; set {setting}.position_dims={list(context.position_dims)[:3]} (the x, y(, z) entries)")
    planar = {"KeepOut", "SceneKeepOut"}  # a vertical cylinder needs no height; any other program may read z
    if len(dims) < min(3, len(context.position_dims)) and any(
            type(r.program).__name__ not in planar or getattr(r.program, "shape", "") != "cylinder" for r in steering.rewards):
        extra = [d for d in context.position_dims if d not in dims][: 3 - len(dims)]
        note(f"note: {setting}.position_dims={dims} give the reward {len(dims)} of the action's position entries "
             f"{list(context.position_dims)}: the trajectory it reads has z = 0 (entry {extra} unseen), so a reward on "
             f"heights has nothing to steer; set {setting}.position_dims={[*dims, *extra]} if it reads z")
    if velocity != (context.action_mode == "velocity"):
        raise ValueError(f"{setting}.velocity_actions={velocity} but context.action_mode={context.action_mode!r}: the reward "
                         f"would read {'positions as velocities' if velocity else 'velocities as positions'}; set "
                         f"{setting}.velocity_actions={str(context.action_mode == 'velocity').lower()}")
    if velocity:
        problem = frame_problem(context, setting)
        if problem:
            raise ValueError(problem)
        if obs is not None:
            check_start_measured(context, obs, setting)
    steering.checked_layout = _layout(context)


def _layout(context: FallbackContext) -> tuple:
    return (tuple(int(d) for d in context.position_dims), str(context.action_mode), context.agent_pos_key,
            tuple(context.agent_pos_dims), context.control_period_s)
