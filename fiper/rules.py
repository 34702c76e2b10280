"""Alarm rules: how the indicators' threshold crossings combine into one alarm.

A rule reduces, along one axis, the per-indicator exceedances ``eta_k > gamma_k`` (booleans) to
the alarm and the per-indicator ratios ``eta_k / gamma_k`` to the combined ratio, so that
"combined ratio > 1" holds exactly when the alarm does. The online alarm (the control loop), the
offline trace and the evaluation grid all call the registered rule; adding one is a
``register_rule`` call in one file (docs/architecture.md shows an example).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Reduce = Callable[..., np.ndarray]  # (values, axis=...) -> values reduced along axis


@dataclass(frozen=True)
class AlarmRule:
    """A named combination of indicators: ``alarm`` reduces exceedances, ``ratio`` reduces ratios."""

    name: str
    alarm: Reduce
    ratio: Reduce
    min_indicators: int = 1
    max_indicators: int | None = None
    description: str = ""
    # Optional fast paths for one decision's short Python lists (the online alarm); default: the array reduces.
    alarm_one: Callable[[list[bool]], bool] | None = None
    ratio_one: Callable[[list[float]], float] | None = None
    # The false-alarm bound, as a multiple of delta, of K indicators each calibrated on its own at delta (the union
    # bound K for 'or', 1 for 'and'); None: none is known, so only joint calibration gives the rule a guarantee.
    separate_bound: Callable[[int], float] | None = None

    def decide(self, above: list[bool], ratios: list[float]) -> tuple[bool, float]:
        """One decision: (alarm, combined ratio) from the active indicators' crossings and ratios."""
        alarm = self.alarm_one(above) if self.alarm_one else self.alarm(above)
        ratio = self.ratio_one(ratios) if self.ratio_one else self.ratio(ratios)
        return bool(alarm), float(ratio)

    def check(self, num_indicators: int) -> AlarmRule:
        """Refuse a number of indicators the rule does not take."""
        if num_indicators < max(1, self.min_indicators):
            raise ValueError(f"rule {self.name!r} takes at least {max(1, self.min_indicators)} indicator(s), got {num_indicators}")
        if self.max_indicators is not None and num_indicators > self.max_indicators:
            hint = "; use 'and' or 'or'" if self.max_indicators == 1 else ""
            raise ValueError(f"rule {self.name!r} takes exactly one indicator, got {num_indicators}{hint}" if self.max_indicators == 1
                             else f"rule {self.name!r} takes at most {self.max_indicators} indicators, got {num_indicators}")
        return self


RULES: dict[str, AlarmRule] = {}


def register_rule(rule: AlarmRule) -> AlarmRule:
    """Make ``rule`` available by name to monitors, their specs and the evaluation; names are unique."""
    known = RULES.get(rule.name)
    if known is not None and known != rule:
        raise ValueError(f"alarm rule name {rule.name!r} is taken")
    RULES[rule.name] = rule
    return rule


def guarantees_delta(rule: str, num_indicators: int, joint: bool) -> bool:
    """Whether calibrating at delta bounds the rule's false-alarm rate by delta: joint calibration always does;
    indicators calibrated on their own only under a rule whose separate bound is delta itself ('and', 'single')."""
    bound = get_rule(rule).separate_bound
    return joint or num_indicators <= 1 or (bound is not None and bound(num_indicators) <= 1)


def separate_bound_text(rule: str, num_indicators: int, delta: float) -> str | None:
    """'K x delta = value': the false-alarm bound of ``rule`` with each indicator calibrated on its own at ``delta``, or
    None when the rule states none."""
    bound = get_rule(rule).separate_bound
    return None if bound is None else f"{bound(num_indicators):g} x delta = {bound(num_indicators) * float(delta):g}"


def get_rule(name: str) -> AlarmRule:
    """The rule registered under ``name``; the error lists the known ones."""
    try:
        return RULES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown alarm rule {name!r}; expected one of {tuple(RULES)}") from None


register_rule(AlarmRule("and", np.all, np.min, description="every indicator above its threshold (FIPER)", alarm_one=all, ratio_one=min,
                        separate_bound=lambda k: 1.0))
register_rule(AlarmRule("or", np.any, np.max, description="any indicator above its threshold", alarm_one=any, ratio_one=max,
                        separate_bound=float))
register_rule(AlarmRule("single", np.all, np.min, max_indicators=1, description="the one indicator above its threshold",
                        alarm_one=all, ratio_one=min, separate_bound=lambda k: 1.0))
