"""Safe behaviours to switch to when the monitor alarms: hold, stop, retreat, hand over, controller.

A fallback is anything with ``name``, ``start(context)`` (called once when it takes over) and
``act(obs, context) -> action (A,)`` (called every environment step after that). The built-ins
latch their target on the first ``act`` after ``start``, from the freshest observation. Grippers
and other non-position entries keep their last commanded value.
"""

from __future__ import annotations

import abc

from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np

from fiper.interventions.context import FallbackContext, to_numpy
from fiper.interventions.loading import check_call, load_object
from fiper.interventions.registry import Registry


@runtime_checkable
class Fallback(Protocol):
    """A safe behaviour the wrapper executes, one action per environment step."""

    name: str

    def start(self, context: FallbackContext) -> None: ...

    def act(self, obs: Mapping[str, Any], context: FallbackContext) -> np.ndarray: ...


def check_fallback(fallback: Any, what: str = "the fallback") -> None:
    """A ValueError naming what ``fallback`` lacks to be a Fallback: ``start(context)`` and ``act(obs, context)``."""
    for method, args in (("start", ("context",)), ("act", ("obs", "context"))):
        fn = getattr(fallback, method, None)
        if not callable(fn):
            raise ValueError(f"{what} {type(fallback).__name__} has no method {method}({', '.join(args)}): a fallback "
                             "has start(context) and act(obs, context) -> action (A,) (docs/interventions.md, "
                             "\"Fallbacks\"); a function obs -> action is {name: controller, controller: <it>}")
        check_call(fn, (None,) * len(args), {}, f"{what}'s {method}", f"({', '.join(args)})")


def check_action(action: Any, context: FallbackContext, who: str) -> np.ndarray:
    """``action`` as a finite (A,) float array, or a ValueError naming ``who`` produced it."""
    arr = to_numpy(action)
    if arr.shape != (context.action_dim,):
        raise ValueError(f"{who} returned an action of shape {arr.shape}; expected ({context.action_dim},)")
    if not np.isfinite(arr).all():
        raise ValueError(f"{who} returned a non-finite action {arr.tolist()}")
    return arr


class _LatchedTarget(abc.ABC):
    """A fallback that computes one action when it starts acting and repeats it."""

    def __init__(self) -> None:
        self._target: np.ndarray | None = None

    def start(self, context: FallbackContext) -> None:
        self._target = None

    @abc.abstractmethod
    def _latch(self, obs: Mapping[str, Any], context: FallbackContext) -> np.ndarray:
        """The action to repeat, computed at the first step after start()."""

    def act(self, obs: Mapping[str, Any], context: FallbackContext) -> np.ndarray:
        if self._target is None:  # latch on the first step after start
            self._target = self._latch(obs, context)
        return self._target.copy()


class HoldPosition(_LatchedTarget):
    """Command, every step, the position measured when the fallback started (gripper unchanged).

    Without a measured position it holds the last commanded position target. With velocity
    actions it commands zero velocity on the position dims.
    """

    name = "hold"

    def _latch(self, obs: Mapping[str, Any], context: FallbackContext) -> np.ndarray:
        target = context.template(obs)
        pos = context.current_position(obs)
        dims = list(context.position_dims)
        if context.action_mode == "velocity":
            target[dims] = 0.0
        elif pos is not None:
            target[dims] = pos
        return target


class Stop(_LatchedTarget):
    """Repeat the last commanded action (position targets: the robot settles there and stays)."""

    name = "stop"

    def _latch(self, obs: Mapping[str, Any], context: FallbackContext) -> np.ndarray:
        target = context.template(obs)
        if context.action_mode == "velocity":
            target[list(context.position_dims)] = 0.0
        return target


def _resample_polyline(points: np.ndarray, speed: float) -> np.ndarray:
    """Points every ``speed`` units of arc length along the polyline ``points`` (K, P), ends included."""
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    total = arc[-1]
    if total <= 0.0:
        return points[-1:].copy()
    stops = np.append(np.arange(speed, total, speed), total)
    return np.stack([np.interp(stops, arc, points[:, d]) for d in range(points.shape[1])], axis=1)


class Retreat:
    """Walk back along the recently executed position targets, newest to oldest, then hold.

    The walk starts at the measured position and the recorded target nearest to it (newer
    targets, which a lagging robot has not reached, are skipped); the last ``steps`` recorded
    targets bound how far back it goes. ``speed`` (env units per step) re-spaces the path
    by arc length; None visits one recorded target per step. With velocity actions the last
    ``steps`` velocities are replayed negated in reverse order, then zero velocity.
    """

    name = "retreat"

    def __init__(self, steps: int = 20, speed: float | None = None):
        if isinstance(steps, bool) or int(steps) < 1:
            raise ValueError(f"steps={steps!r} is invalid: retrace at least one recorded step")
        if speed is not None and not float(speed) > 0:
            raise ValueError(f"speed={speed!r} is invalid: give a positive distance per step or None")
        self.steps = int(steps)
        self.speed = None if speed is None else float(speed)
        self._plan: np.ndarray | None = None
        self._i = 0

    def start(self, context: FallbackContext) -> None:
        self._plan, self._i = None, 0

    def _make_plan(self, obs: Mapping[str, Any], context: FallbackContext) -> np.ndarray:
        base = context.template(obs)
        dims = list(context.position_dims)
        history = context.action_history()[-self.steps:]
        if context.action_mode == "velocity":
            moves = -history[::-1, dims]
            stop = base.copy()
            stop[dims] = 0.0
            plan = np.repeat(stop[None], len(moves) + 1, axis=0)
            plan[: len(moves), dims] = moves
        else:
            path = history[::-1, dims]  # newest first
            pos = context.current_position(obs)
            if pos is not None:
                # Targets newer than the one nearest the robot lie ahead of it (tracking lag): skip them.
                if len(path):
                    path = path[int(np.argmin(np.linalg.norm(path - pos, axis=1))):]
                path = np.concatenate([pos[None], path])
            if len(path) == 0:
                path = base[None, dims]
            if self.speed is not None:
                path = _resample_polyline(path, self.speed)
            plan = np.repeat(base[None], len(path), axis=0)
            plan[:, dims] = path
        return plan

    @property
    def path(self) -> np.ndarray | None:
        """The planned action sequence (K, A); the last row is held once it is reached."""
        return None if self._plan is None else self._plan.copy()

    def act(self, obs: Mapping[str, Any], context: FallbackContext) -> np.ndarray:
        if self._plan is None:  # plan on the first step after start, from the current position
            self._plan, self._i = self._make_plan(obs, context), 0
        action = self._plan[min(self._i, len(self._plan) - 1)]
        self._i += 1
        return action.copy()


class HandOver:
    """Give control to a person or another system: ``callback(obs, context)`` returns an action or None.

    None (nobody has taken over yet) holds position. ``on_start(context)``, if given, is called
    once when the fallback takes over, e.g. to page an operator. Callables may be given as
    ``"module:function"`` / ``"file.py:function"`` strings.
    """

    name = "hand_over"

    def __init__(self, callback: Callable[..., Any] | str, on_start: Callable[..., Any] | str | None = None):
        self.callback = load_object(callback) if isinstance(callback, str) else callback
        self.on_start = load_object(on_start) if isinstance(on_start, str) else on_start
        if not callable(self.callback):
            raise TypeError(f"callback={callback!r} is not callable: pass a function (obs, context) -> action | None")
        check_call(self.callback, (None, None), {}, f"the hand-over callback {callback!r}", "(obs, context)")
        if self.on_start is not None:
            check_call(self.on_start, (None,), {}, f"the hand-over's on_start {on_start!r}", "(context)")
        self._hold = HoldPosition()

    def start(self, context: FallbackContext) -> None:
        self._hold.start(context)
        if self.on_start is not None:
            self.on_start(context)

    def act(self, obs: Mapping[str, Any], context: FallbackContext) -> np.ndarray:
        action = self.callback(obs, context)
        if action is None:
            return self._hold.act(obs, context)
        return check_action(action, context, "the hand-over callback")


class SafeController:
    """Run a user-supplied safe controller: any callable ``obs -> action (A,)``."""

    name = "controller"
    uses_positions = False  # its actions are the controller's: no action entry needs to be named a position

    def __init__(self, controller: Callable[[Mapping[str, Any]], Any] | str):
        self.controller = load_object(controller) if isinstance(controller, str) else controller
        self.named = controller if isinstance(controller, str) else getattr(controller, "__qualname__", type(controller).__name__)
        if not callable(self.controller):
            raise TypeError(f"controller={controller!r} is not callable: pass a function obs -> action")
        check_call(self.controller, (None,), {}, f"the safe controller {controller!r}", "(obs)")

    def start(self, context: FallbackContext) -> None:
        reset = getattr(self.controller, "reset", None)
        if callable(reset):
            reset()

    def act(self, obs: Mapping[str, Any], context: FallbackContext) -> np.ndarray:
        return check_action(self.controller(obs), context, "the safe controller")

    def probe(self, obs: Mapping[str, Any], action_dim: int) -> None:
        """Call the controller once on ``obs`` (an observation as the control loop hands it over, key by key) and check
        its action, then reset it: a controller written for another observation (a flat vector where the env gives a
        dict) raises here, before a sweep in which no alarm may ever call it, not at a robot's first alarm."""
        try:
            action = to_numpy(self.controller(obs))
        except Exception as err:
            raise ValueError(f"the safe controller {self.named!r} raised on the env's first observation (keys "
                             f"{sorted(obs)}): {type(err).__name__}: {err}; it is called with the observation as a dict "
                             "of its keys, as the policy reads them (a flat Box observation under 'obs')") from None
        if action.shape != (int(action_dim),) or not np.isfinite(action).all():
            raise ValueError(f"the safe controller {self.named!r} returned {action.tolist()} on the env's first "
                             f"observation; expected {int(action_dim)} finite entries, one per action entry")
        self.start(None)


FALLBACKS = Registry("fallback", {
    "hold": HoldPosition,
    "stop": Stop,
    "retreat": Retreat,
    "hand_over": HandOver,
    "controller": SafeController,
})


def register_fallback(name: str, factory: Callable[..., Fallback], *, overwrite: bool = False) -> None:
    """Make ``make_fallback(name, **kw)`` build ``factory(**kw)``."""
    FALLBACKS.register(name, factory, overwrite=overwrite)


def make_fallback(name: str, **kwargs: Any) -> Fallback:
    """Build the registered fallback ``name`` with ``kwargs``."""
    return FALLBACKS.make(name, **kwargs)