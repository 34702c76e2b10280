"""What a fallback knows about the robot: its action layout and the recently executed actions.

The wrapper records every executed action (and, where the observation has one, the measured
agent position) into a :class:`FallbackContext`; a fallback reads it to hold, stop or retreat.
Actions are absolute position targets (``action_mode='position'``, the diffusion_policy
convention), velocities (``action_mode='velocity'``), or forces and torques (``action_mode='effort'``):
no built-in fallback can hold an arm still by its efforts, so they are refused there and a controller of
the user's own is the fallback.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

ACTION_MODES = ("position", "velocity", "effort")


def uses_positions(response: Any) -> bool:
    """Whether a response has a fallback that commands positions (hold, stop, retreat, ...); a controller of the user's
    own (``SafeController``, ``uses_positions = False``) computes its actions itself and reads no action layout."""
    fallback = getattr(response, "fallback", None)
    return fallback is not None and bool(getattr(fallback, "uses_positions", True))


def refuse_effort(action_mode: str | None, what: str) -> None:
    """Raise naming the fix when ``what`` (a fallback commanding positions or velocities) is given effort actions."""
    if action_mode == "effort":
        raise ValueError(
            f"{what} commands positions or velocities, but the action entries are forces or torques (action_mode='effort'): "
            "repeating or zeroing an effort does not hold an arm still (a hold would keep pushing, or let it fall). Give a "
            "controller of your own as the fallback (fiper.interventions.SafeController; the controller response in "
            "launch.stress / launch.act), or a response without a fallback (steer)")


def _dims(name: str, dims: Sequence[int], action_dim: int) -> tuple[int, ...]:
    out = tuple(int(d) for d in dims)
    bad = [d for d in out if not 0 <= d < action_dim]
    if bad or len(set(out)) != len(out):
        raise ValueError(
            f"{name}={list(dims)} is invalid for action_dim={action_dim}: give distinct indices in [0, {action_dim})"
        )
    return out


def to_numpy(value: Any) -> np.ndarray:
    """A float64 array from a numpy array, a list or a torch tensor."""
    return np.asarray(value.detach().cpu() if hasattr(value, "detach") else value, dtype=np.float64)


def as_vector(value: Any, length: int, what: str) -> np.ndarray:
    """The most recent row of ``value`` as a float vector of ``length``; leading dims are history/batch."""
    arr = to_numpy(value)
    if arr.size == 0 or arr.shape[-1] != length:
        raise ValueError(f"{what} has shape {arr.shape}; its last axis must have length {length}")
    return arr.reshape(-1, length)[-1]


@dataclass
class FallbackContext:
    """Action layout plus a bounded history of executed actions and measured positions.

    ``position_dims`` index the action entries that are position targets (or velocities),
    ``gripper_dims`` those a fallback must leave unchanged. ``agent_pos_key`` names the
    observation entry with the measured position; ``agent_pos_dims`` pick, from that vector,
    the entries matching ``position_dims`` (default: its first ``len(position_dims)``).
    ``control_period_s`` is seconds per env step (``fiper.control.period``): how long one step of a velocity action
    lasts, which a velocity steering integrates its paths with (None: unknown). ``velocity_scale`` is the velocity,
    in the positions' units per second, that one unit of a velocity action commands: 1 when the actions are such
    velocities, 0.25 for an end-effector delta of 0.025 m per 0.1 s step per unit (lerobot's gym-hil).
    """

    action_dim: int
    position_dims: Sequence[int]
    gripper_dims: Sequence[int] = ()
    agent_pos_key: str | None = "agent_pos"
    agent_pos_dims: Sequence[int] | None = None
    action_mode: str = "position"
    history_len: int = 512
    control_period_s: float | None = None
    velocity_scale: float = 1.0
    actions: deque = field(init=False, repr=False)
    positions: deque = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.action_dim, bool) or int(self.action_dim) < 1:
            raise ValueError(f"action_dim={self.action_dim!r} is invalid: must be an integer >= 1")
        self.action_dim = int(self.action_dim)
        self.position_dims = _dims("position_dims", self.position_dims, self.action_dim)
        if not self.position_dims:
            raise ValueError("position_dims is empty: name the action entries that are positions, e.g. [0, 1]")
        self.gripper_dims = _dims("gripper_dims", self.gripper_dims, self.action_dim)
        if set(self.gripper_dims) & set(self.position_dims):
            raise ValueError(
                f"gripper_dims={list(self.gripper_dims)} overlap position_dims={list(self.position_dims)}: keep them disjoint"
            )
        if self.agent_pos_dims is None:
            self.agent_pos_dims = tuple(range(len(self.position_dims)))
        self.agent_pos_dims = tuple(int(d) for d in self.agent_pos_dims)
        if len(self.agent_pos_dims) != len(self.position_dims):
            raise ValueError(
                f"agent_pos_dims={list(self.agent_pos_dims)} must have one entry per position dim "
                f"({len(self.position_dims)})"
            )
        if self.action_mode not in ACTION_MODES:
            raise ValueError(f"action_mode={self.action_mode!r} is invalid: choose one of {ACTION_MODES}")
        if int(self.history_len) < 1:
            raise ValueError(f"history_len={self.history_len!r} is invalid: must be >= 1")
        if self.control_period_s is not None:
            from fiper.control.period import positive_seconds  # fiper.control imports this package

            self.control_period_s = positive_seconds(self.control_period_s, "FallbackContext control_period_s",
                                                     "give the env's seconds per step (fiper.control.period.control_period_s)")
        scale = self.velocity_scale
        if isinstance(scale, bool) or not isinstance(scale, (int, float, np.integer, np.floating)) or not 0 < float(scale) < math.inf:
            raise ValueError(f"velocity_scale={scale!r} is invalid: the velocity, in the positions' units per second, that one "
                             "unit of a velocity action commands, a positive number (1 when the actions are such velocities)")
        self.velocity_scale = float(scale)
        self.actions = deque(maxlen=int(self.history_len))
        self.positions = deque(maxlen=int(self.history_len))

    @property
    def velocity_step(self) -> float | None:
        """How far one unit of a velocity action moves a position in one env step: control period x velocity_scale."""
        return None if self.control_period_s is None else self.control_period_s * self.velocity_scale

    # -- recording ---------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the history (new episode)."""
        self.actions.clear()
        self.positions.clear()

    def record(self, action: Any, obs: Mapping[str, Any] | None = None) -> None:
        """Append one executed action (A,) and, if ``obs`` carries it, the measured position."""
        self.actions.append(as_vector(action, self.action_dim, "executed action").copy())
        pos = self.agent_position(obs) if obs is not None else None
        if pos is not None:
            self.positions.append(pos)

    # -- reading -----------------------------------------------------------------------------
    def agent_position(self, obs: Mapping[str, Any] | None) -> np.ndarray | None:
        """The measured position (len(position_dims),) from ``obs``, or None if not available; ValueError when it
        cannot be read or is not finite (a fallback cannot hold a position it cannot measure)."""
        if obs is None or self.agent_pos_key is None or self.agent_pos_key not in obs:
            return None
        raw = to_numpy(obs[self.agent_pos_key])
        if raw.size == 0 or raw.shape[-1] <= max(self.agent_pos_dims):
            raise ValueError(
                f"obs[{self.agent_pos_key!r}] has shape {raw.shape}; agent_pos_dims={list(self.agent_pos_dims)} "
                "index past its last axis: set agent_pos_dims to match the observation"
            )
        pos = raw.reshape(-1, raw.shape[-1])[-1][list(self.agent_pos_dims)].copy()
        if not np.isfinite(pos).all():
            raise ValueError(f"obs[{self.agent_pos_key!r}] holds a non-finite measured position {pos.tolist()}: a fallback "
                             "cannot hold it; check the sensor or the state estimator")
        return pos

    def current_position(self, obs: Mapping[str, Any] | None = None) -> np.ndarray | None:
        """The position measured in ``obs``, else the last recorded one, else None."""
        pos = self.agent_position(obs)
        if pos is None and self.positions:
            pos = self.positions[-1].copy()
        return pos

    @property
    def last_action(self) -> np.ndarray | None:
        """The most recently executed action, or None before the first step."""
        return self.actions[-1].copy() if self.actions else None

    def action_history(self) -> np.ndarray:
        """Executed actions, oldest first, (T, A)."""
        return np.stack(self.actions) if self.actions else np.zeros((0, self.action_dim))

    def template(self, obs: Mapping[str, Any] | None = None) -> np.ndarray:
        """A base action to edit: the last executed one; needs history or a measured position."""
        last = self.last_action
        if last is not None:
            return last
        if self.action_mode == "velocity":
            return np.zeros(self.action_dim)
        pos = self.current_position(obs)
        if pos is None:
            raise ValueError(
                "the fallback has no executed action and no measured position to hold (no observation of this episode "
                f"has yet passed the checks with a finite obs[{self.agent_pos_key!r}]): record actions into the "
                f"FallbackContext or provide a finite obs[{self.agent_pos_key!r}]"
            )
        out = np.zeros(self.action_dim)
        out[list(self.position_dims)] = pos
        return out
