"""Graded response: on an alarm steer first; if the monitor's ratio stays >= 1, fall back.

State machine, one transition per policy decision::

    none ──alarm──► steer ──ratio >= 1 for max_steer_decisions decisions in a row──► fallback
                      │  ▲                                                            (latched
                      └──┘ ratio < 1 resets the count (steering works: keep steering)   until reset)

Without a steering object an alarm goes straight to the fallback; without a fallback, steering
continues indefinitely. ``start='steer'`` begins every episode in the steer state, without waiting
for an alarm (the upper bound of alarm-triggered steering, when the hazard is known in advance). :meth:`GradedResponse.fail_safe` (an exception or a non-finite value in
the monitor) switches to the fallback at once. ``labels`` records, per decision,
``'none' | 'steer' | 'fallback:<name>'`` for the rollout store.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from fiper.interventions.context import FallbackContext
from fiper.interventions.fallbacks import Fallback, check_fallback
from fiper.interventions.steering import Steering


RESPONSE_INTERFACE = ("reset", "bind", "step", "fail_safe", "fallback_action", "fallback", "fallback_label", "steering",
                      "mode", "excluded_scores", "labels")  # what MonitoredPolicy reads of a response


def check_response(response: Any, what: str = "the response") -> None:
    """A ValueError naming what ``response`` lacks of ``RESPONSE_INTERFACE`` (a GradedResponse subclass has it all)."""
    missing = [a for a in RESPONSE_INTERFACE if not hasattr(response, a)]
    if missing:
        raise ValueError(f"{what} is a {type(response).__name__}, which lacks {missing}: return a GradedResponse "
                         "(or a subclass of it, or of ReturnAndRetry) from your response factory")


class GradedResponse:
    """Decides per decision between the plain policy, steering and a fallback."""

    def __init__(self, steering: Steering | None = None, fallback: Fallback | None = None,
                 max_steer_decisions: int = 3, release_after: int | None = None, start: str = "policy"):
        if steering is None and fallback is None:
            raise ValueError("GradedResponse needs a steering object, a fallback, or both")
        if fallback is not None:
            check_fallback(fallback)
        if start not in ("policy", "steer"):
            raise ValueError(f"start={start!r} is invalid: 'policy' (steer on the alarm) or 'steer' (steer from the first decision)")
        if start == "steer" and steering is None:
            raise ValueError("start='steer' needs a steering object: give GradedResponse steering=Steering(...)")
        if isinstance(max_steer_decisions, bool) or int(max_steer_decisions) < 1:
            raise ValueError(f"max_steer_decisions={max_steer_decisions!r} is invalid: must be an integer >= 1")
        if release_after is not None and int(release_after) < 1:
            raise ValueError(f"release_after={release_after!r} is invalid: an integer >= 1, or None to steer until reset")
        self.steering, self.fallback = steering, fallback
        self.max_steer_decisions = int(max_steer_decisions)
        self.release_after = None if release_after is None else int(release_after)
        self.start = start  # 'steer': every episode starts steered, as if the hazard were known in advance
        self.reset()

    def reset(self) -> None:
        """New episode: plain policy (or steering, with start='steer'), empty record; resets the steering's stage tracker too."""
        self.mode = "steer" if self.start == "steer" else "none"
        self.labels: list[str] = []
        self._over = 0  # consecutive steered decisions with ratio >= 1
        self._under = 0  # consecutive steered decisions with ratio < 1
        self._fallback_started = False
        if self.steering is not None:
            self.steering.reset()

    def bind(self, env: Any) -> None:
        """New episode's scene (after ``env.reset``): passed on to the steering's reward programs."""
        if self.steering is not None:
            self.steering.bind(env)

    @property
    def fallback_label(self) -> str:
        return f"fallback:{getattr(self.fallback, 'name', type(self.fallback).__name__)}"

    @property
    def excluded_scores(self) -> tuple[str, ...]:
        """Scores the monitor should ignore at this decision (ACE while steering)."""
        return tuple(self.steering.excluded_scores) if self.mode == "steer" and self.steering is not None else ()

    def fail_safe(self) -> str:
        """Switch to the fallback now (monitor error or non-finite value); returns the label."""
        if self.fallback is None:
            raise RuntimeError("the monitor failed and no fallback is configured: give GradedResponse a fallback")
        self.mode = "fallback"
        self.labels.append(self.fallback_label)
        return self.fallback_label

    def step(self, alarm: bool, ratio: float) -> str:
        """Advance one decision with the monitor's alarm and combined ratio; returns the label."""
        ratio = float(ratio)
        if not math.isfinite(ratio) and self.fallback is not None:
            self.mode = "fallback"
        elif self.mode == "none" and alarm:
            if self.steering is None:
                self.mode = "fallback"
            else:
                self.mode, self._over, self._under = "steer", 0, 0
        elif self.mode == "steer":
            if not ratio < 1.0:  # NaN counts as not recovered
                self._over, self._under = self._over + 1, 0
                if self.fallback is not None and self._over >= self.max_steer_decisions:
                    self.mode = "fallback"
            else:
                self._over, self._under = 0, self._under + 1
                if self.release_after is not None and self._under >= self.release_after:
                    self.mode = "none"
        label = {"none": "none", "steer": "steer"}.get(self.mode, self.fallback_label if self.fallback else "none")
        self.labels.append(label)
        return label

    def fallback_action(self, obs: Mapping[str, Any], context: FallbackContext) -> np.ndarray:
        """The fallback's action for this environment step (starts it on first use)."""
        if self.fallback is None or self.mode != "fallback":
            raise RuntimeError(f"fallback_action called in mode {self.mode!r}: only valid after step() returned 'fallback:*'")
        if not self._fallback_started:
            self.fallback.start(context)
            self._fallback_started = True
        return self.fallback.act(obs, context)
