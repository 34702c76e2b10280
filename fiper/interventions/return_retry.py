"""Return to the training distribution and retry: on an alarm, bring the robot back to a state the
policy has seen, restart the policy there, and fall back for good once the retries are spent.

State machine, one transition per policy decision (``step``) or environment step (``fallback_action``)::

    none ──alarm, retries left──► return ──path done, robot settled──► none   (the wrapper restarts the
      │                             │                                         policy: fresh observation
      │                             └─ any fault (a bad plan, a non-finite     history, fresh monitor windows)
      │                                action, a refused observation) ─┐
      └──alarm, no retries left / non-finite ratio / fail_safe() ─────┴──► fallback (hold / stop …, latched)

Where it returns (``target``):

- ``"path"``: back along the executed position targets, newest to oldest, to the state at the last
  decision the monitor judged in distribution (no alarm and combined ratio below
  ``in_distribution_below``), or ``decisions_back`` decisions before the alarm. Velocity actions:
  the executed velocities replayed negated in reverse order.
- ``"start"``: in a straight line to the nearest start pose of the demonstrations
  (:class:`~fiper.interventions.start_poses.StartPoses`, nearest in the position dims).

It acts through the fallbacks' action layout (``FallbackContext``): position dims move, gripper
and other entries keep their last commanded value (``gripper="start"``: the demonstration's first
command, e.g. open, from the first step of the return). ``MonitoredPolicy`` binds the context
(``bind_context``) and, after each fallback step, asks ``ready_to_resume(fault)``; True makes it
clear the queue, the policy's observation history and the monitor's windows and call ``resumed()``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fiper.interventions.context import FallbackContext, refuse_effort
from fiper.interventions.fallbacks import Fallback, HoldPosition, _resample_polyline, check_action, check_fallback
from fiper.interventions.start_poses import StartPoses

TARGETS = ("path", "start")
GRIPPERS = ("keep", "start")


def _index(items: Sequence[Any], obj: Any) -> int | None:
    """Position of ``obj`` (by identity) in ``items``, or None when it is absent (None, or evicted from the history)."""
    if obj is None:
        return None
    return next((i for i in range(len(items) - 1, -1, -1) if items[i] is obj), None)


class ReturnAndRetry:
    """On an alarm: return to a state the policy has seen, then let the policy try again (``max_retries`` times).

    Exposes the response interface ``MonitoredPolicy`` drives (``step``, ``fallback_action``,
    ``fail_safe``, ``labels``, ``mode``, ``reset``), so it is used wherever a ``GradedResponse`` is.
    ``retries`` counts the returns of the episode, ``events`` says what happened and why.
    """

    name = "return_retry"
    steering = None
    excluded_scores: tuple[str, ...] = ()

    def __init__(self, target: str = "path", *, decisions_back: int | None = None, max_retries: int = 2,
                 fallback: Fallback | None = None, start_poses: StartPoses | Any = None, demos: str | None = None,
                 start_key: str | None = None, speed: float | None = None, settle_steps: int = 5,
                 tolerance: float = 0.01, in_distribution_below: float = 1.0, gripper: str = "keep",
                 max_steps: int | None = 50):
        if target not in TARGETS:
            raise ValueError(f"target={target!r} is invalid: choose one of {TARGETS}")
        if decisions_back is not None and (isinstance(decisions_back, bool) or int(decisions_back) < 1):
            raise ValueError(f"decisions_back={decisions_back!r} is invalid: an integer >= 1, or None for the last "
                             "decision judged in distribution")
        if isinstance(max_retries, bool) or int(max_retries) < 0:
            raise ValueError(f"max_retries={max_retries!r} is invalid: an integer >= 0 (0 falls back at the first alarm)")
        if speed is not None and not float(speed) > 0:
            raise ValueError(f"speed={speed!r} is invalid: a positive distance per step, or None for the policy's own pace")
        if max_steps is not None and (isinstance(max_steps, bool) or int(max_steps) < 2):
            raise ValueError(f"max_steps={max_steps!r} is invalid: an integer >= 2 (steps a return may take), or None")
        if isinstance(settle_steps, bool) or int(settle_steps) < 0:
            raise ValueError(f"settle_steps={settle_steps!r} is invalid: an integer >= 0")
        if not float(tolerance) > 0:
            raise ValueError(f"tolerance={tolerance!r} is invalid: a positive distance in env units")
        if not float(in_distribution_below) > 0:
            raise ValueError(f"in_distribution_below={in_distribution_below!r} is invalid: a positive ratio (1.0: below threshold)")
        if target == "start":
            if start_poses is None and demos is None:
                raise ValueError("target='start' needs the demonstrations' start poses: demos=<demo store> "
                                 "(or start_poses=[[...], ...])")
            if start_poses is not None and demos is not None:
                raise ValueError("give demos= or start_poses=, not both")
            if demos is not None and start_key is None:
                StartPoses.check_store(demos)  # read at bind_context, from the context's agent_pos_key
            elif demos is not None:
                start_poses = StartPoses.from_store(demos, start_key)
            elif not isinstance(start_poses, StartPoses):
                start_poses = StartPoses(start_poses)
        elif start_poses is not None or demos is not None:
            raise ValueError("start poses are used with target='start' only; drop demos= / start_poses=, or set target='start'")
        if target == "start" and decisions_back is not None:
            raise ValueError("decisions_back is used with target='path' only")
        if gripper not in GRIPPERS:
            raise ValueError(f"gripper={gripper!r} is invalid: choose one of {GRIPPERS}")
        if gripper == "start" and (target != "start" or (start_poses is not None and start_poses.actions is None)):
            raise ValueError("gripper='start' sets the gripper dims to the demonstrations' first action: it needs "
                             "target='start' with demos=<demo store> (start_poses=[...] carry no actions)")
        self.gripper = gripper
        self.target, self.start_poses = target, start_poses
        self._demos = demos
        self.decisions_back = None if decisions_back is None else int(decisions_back)
        self.max_retries, self.speed = int(max_retries), None if speed is None else float(speed)
        self.settle_steps, self.tolerance = int(settle_steps), float(tolerance)
        self.max_steps = None if max_steps is None else int(max_steps)
        self.in_distribution_below = float(in_distribution_below)
        if fallback is not None:
            check_fallback(fallback)
        self.fallback: Fallback = fallback if fallback is not None else HoldPosition()
        self.context: FallbackContext | None = None
        self.reset()

    # ------------------------------------------------------------------ life cycle
    def reset(self) -> None:
        """New episode: no returns made, empty record."""
        self.mode = "none"
        self.labels: list[str] = []
        self.events: list[str] = []
        self.retries = 0
        self._fallback_started = False
        self._new_segment(origin=None, pending=False)

    def _new_segment(self, origin: np.ndarray | None, pending: bool) -> None:
        """Start the stretch of executed path a later return may walk back along."""
        self._origin = origin  # measured position where the segment began (None: read it from the history)
        self._segment_start: Any = None  # the last action recorded before the segment (identity)
        self._segment_pending = pending  # the segment starts with the next recorded action
        self._decisions: list[Any] = []  # per decision of the segment: the last action recorded before it
        self._good: list[Any] = []  # the same, for decisions judged in distribution
        self._plan: np.ndarray | None = None
        self._mark: Any = None
        self._i = self._settled = 0
        self._done = False

    def bind(self, env: Any) -> None:
        """Nothing in the scene to read."""

    def bind_context(self, context: FallbackContext) -> None:
        """The wrapper's action layout and executed history, read at every decision."""
        if context is None:
            raise ValueError("ReturnAndRetry needs a FallbackContext: pass context=FallbackContext(...) to MonitoredPolicy")
        refuse_effort(context.action_mode, "return_retry")
        if self.target == "start":
            if context.action_mode != "position":
                raise ValueError("target='start' drives to a position: it needs action_mode='position'; use target='path' "
                                 "with velocity actions")
            if self.start_poses is None:
                self.start_poses = StartPoses.from_store(self._demos, context.agent_pos_key or "agent_pos")
            self.start_poses.positions(context.agent_pos_dims)  # raises naming the mismatch
            if self.gripper == "start" and self.start_poses.actions is None:
                raise ValueError(f"gripper='start' sets the gripper dims to the demonstrations' first action, but "
                                 f"{self._demos} has no 'action' key: give the demo store the policy was trained on")
            if self.gripper == "start" and self.start_poses.actions.shape[1] != context.action_dim:
                raise ValueError(f"the demonstrations' actions have {self.start_poses.actions.shape[1]} entries, the policy's "
                                 f"{context.action_dim}: give the demo store the policy was trained on")
        self.context = context

    @property
    def fallback_label(self) -> str:
        if self.mode == "return":
            return f"fallback:{self.name}"
        return f"fallback:{getattr(self.fallback, 'name', type(self.fallback).__name__)}"

    # ------------------------------------------------------------------ per decision
    def step(self, alarm: bool, ratio: float) -> str:
        """Advance one decision with the monitor's alarm and combined ratio; returns the label."""
        ratio = float(ratio)
        ctx = self.context
        if ctx is None:
            self._give_up("no FallbackContext is bound (MonitoredPolicy binds it; call bind_context(context) in your own loop)")
        elif self.mode == "none":
            if self._segment_pending:
                self._segment_start = ctx.actions[-1] if ctx.actions else None
                self._segment_pending = False
            if self._origin is None and ctx.positions and self._segment_start is None:
                self._origin = ctx.positions[0].copy()  # the episode's first measured position
            last = ctx.actions[-1] if ctx.actions else None
            self._decisions.append(last)
            if not math.isfinite(ratio):
                self._give_up(f"the monitor's ratio is {ratio}")
            elif alarm:
                if self.retries < self.max_retries:
                    self._start_return()
                else:
                    self._give_up(f"alarm after {self.retries} of {self.max_retries} retries")
            elif ratio < self.in_distribution_below:
                self._good.append(last)
        label = "none" if self.mode == "none" else self.fallback_label
        self.labels.append(label)
        return label

    def _start_return(self) -> None:
        self.retries += 1
        self.mode, self._plan, self._i, self._settled, self._done = "return", None, 0, 0, False
        if self.target == "path" and self.decisions_back is not None:
            k = len(self._decisions) - 1 - self.decisions_back  # the alarm decision is the last one
            self._mark = self._decisions[k] if k >= 0 else None
            where = f"{self.decisions_back} decisions back" if k >= 0 else "the start of the segment"
        elif self.target == "path":
            self._mark = self._good[-1] if self._good else None
            where = "the last decision judged in distribution" if self._good else "the start of the segment"
        else:
            where = "the nearest demonstration start pose"
        self.events.append(f"return {self.retries}/{self.max_retries}: to {where}")

    def fail_safe(self) -> str:
        """Switch to the fallback now (a monitor or policy fault); returns the label."""
        self._give_up("fail-safe alarm")
        self.labels.append(self.fallback_label)
        return self.fallback_label

    def _give_up(self, why: str) -> None:
        if self.mode != "fallback":
            self.events.append(f"fallback: {why}")
        self.mode = "fallback"

    # ------------------------------------------------------------------ per environment step
    def fallback_action(self, obs: Mapping[str, Any], context: FallbackContext) -> np.ndarray:
        """This step's action: the next point of the return, or the fallback's (any fault in the return ends there)."""
        if self.mode == "return":
            try:
                return check_action(self._return_action(obs, context), context, "the return to distribution")
            except Exception as err:
                self._give_up(f"the return failed: {type(err).__name__}: {err}")
        if self.mode != "fallback":
            raise RuntimeError(f"fallback_action called in mode {self.mode!r}: only valid after step() returned 'fallback:*'")
        if not self._fallback_started:
            self.fallback.start(context)
            self._fallback_started = True
        return self.fallback.act(obs, context)

    def ready_to_resume(self, fault: str = "") -> bool:
        """After a fallback step: True once the return has arrived and the robot settled there.

        ``fault`` (the wrapper could not read this step's observation) ends the return in the fallback.
        """
        if self.mode != "return":
            return False
        if fault:
            self._give_up(f"fail-safe during the return: {fault}")
            return False
        return self._done

    def resumed(self) -> None:
        """The wrapper handed control back to the policy at the return's end point."""
        end = None if self._plan is None else self._plan[-1, list(self.context.position_dims)].copy()
        self.events.append(f"resume after return {self.retries}")
        self.mode = "none"
        self._new_segment(origin=end, pending=True)

    def _return_action(self, obs: Mapping[str, Any], context: FallbackContext) -> np.ndarray:
        if self._plan is None:  # plan on the first step, from the freshest observation
            self._plan = self._make_plan(obs, context)
            if not np.isfinite(self._plan).all():
                raise ValueError(f"the planned return holds {int((~np.isfinite(self._plan)).sum())} non-finite entries")
        last = len(self._plan) - 1
        action = self._plan[min(self._i, last)]
        if self._i >= last:
            pos = context.current_position(obs)
            dims = list(context.position_dims)
            arrived = context.action_mode == "velocity" or (
                pos is not None and float(np.linalg.norm(pos - self._plan[last, dims])) <= self.tolerance)
            self._done = arrived or self._settled >= self.settle_steps
            self._settled += 1
        self._i += 1
        return action.copy()

    # ------------------------------------------------------------------ planning
    def _make_plan(self, obs: Mapping[str, Any], context: FallbackContext) -> np.ndarray:
        """The return as actions (K, A); the last row is where the policy restarts."""
        base = context.template(obs)
        dims = list(context.position_dims)
        pos = context.current_position(obs)
        segment = self._segment_actions(context)
        if self.target == "start":
            here = pos if pos is not None else base[dims]
            nearest = self.start_poses.nearest(here, context.agent_pos_dims)
            goal = self.start_poses.positions(context.agent_pos_dims)[nearest]
            if self.gripper == "start":  # released where the return begins: the policy starts with what it started with
                grip = list(context.gripper_dims)
                base[grip] = self.start_poses.actions[nearest, grip]
            speed = self.speed if self.speed is not None else _pace(context.action_history()[:, dims])
            path = _resample_polyline(np.stack([here, goal]), speed)
            path = np.concatenate([here[None], path])
        elif context.action_mode == "velocity":
            m = _index(self._segment_list, self._mark)
            moves = segment[(m + 1 if m is not None else 0):][::-1, dims]
            stop = base.copy()
            stop[dims] = 0.0
            plan = np.repeat(stop[None], len(moves) + 1, axis=0)
            plan[: len(moves), dims] = -moves
            return plan
        else:
            m = _index(self._segment_list, self._mark)
            path = segment[(m if m is not None else 0):][::-1, dims]  # newest first, down to the mark's target
            if self._mark is None and self._origin is not None:
                path = np.concatenate([path, self._origin[None]])  # back to where the segment began
            if pos is not None:
                if len(path):  # targets newer than the one nearest the robot lie ahead of it (tracking lag)
                    path = path[int(np.argmin(np.linalg.norm(path - pos, axis=1))):]
                path = np.concatenate([pos[None], path])
            if len(path) == 0:
                path = base[None, dims]
            if self.speed is not None:
                path = np.concatenate([path[:1], _resample_polyline(path, self.speed)])
        if self.max_steps is not None and len(path) > self.max_steps:
            path = _respace(path, self.max_steps)
        plan = np.repeat(base[None], len(path), axis=0)
        plan[:, dims] = path
        return plan

    def _segment_actions(self, context: FallbackContext) -> np.ndarray:
        """The actions executed since the segment began (T, A), oldest first; keeps their identities in _segment_list."""
        actions = list(context.actions)
        start = _index(actions, self._segment_start)
        self._segment_list = actions[(start + 1 if start is not None else 0):]
        return np.stack(self._segment_list) if self._segment_list else np.zeros((0, context.action_dim))


def _respace(points: np.ndarray, n: int) -> np.ndarray:
    """``n`` points evenly spaced by arc length along the polyline ``points`` (K, P), ends included."""
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])
    stops = np.linspace(0.0, arc[-1], n)
    return np.stack([np.interp(stops, arc, points[:, d]) for d in range(points.shape[1])], axis=1)


def _pace(targets: np.ndarray) -> float:
    """The policy's own speed: the median non-zero step between consecutive executed targets of the episode."""
    steps = np.linalg.norm(np.diff(targets, axis=0), axis=1) if len(targets) > 1 else np.zeros(0)
    steps = steps[np.isfinite(steps) & (steps > 1e-9)]
    if not len(steps):
        raise ValueError("no executed motion to take the return speed from: set speed=<env units per step>")
    return float(np.median(steps))
