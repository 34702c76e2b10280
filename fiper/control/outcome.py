"""What acting on an alarm achieved: each episode's outcome, and a response's episodes paired with the same
seeds run without fiper.

An episode ends in one of four outcomes:

- ``success``: the task succeeded;
- ``damage``: a physical failure (any failure reason but ``timeout``: dropped, obstacle_collision, off_table, ...);
- ``safe_stop``: not a success, the response's fallback took over for good (a stop, hold, retreat, hand-over: it
  held control until the episode ended) and no physical failure followed, so the episode ran out of time stopped;
- ``timeout``: ran out of time without a stop (steering that never finished, or no alarm at all).

Pairing an episode with the one of the same shift, severity and seed run without fiper says what the response
changed: a would-be failure (the episode without fiper failed) turned into a success or a safe stop, or a
success lost. Both runs draw the same samples until the response first acts, so the alarm's lead is measured
against the onset of the failure the run without fiper had (``fiper.evaluation.metrics.alarmed_before_onset``,
strictly before).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from fiper.evaluation.metrics import TIMEOUT, alarmed_before_onset, onset_decision, physical_onset

SUCCESS, SAFE_STOP, DAMAGE = "success", "safe_stop", "damage"
OUTCOMES = (SUCCESS, SAFE_STOP, DAMAGE, TIMEOUT)  # TIMEOUT is the store's failure reason 'timeout'
FALLBACK_PREFIX = "fallback"  # decisions/intervention of a decision handed to the fallback: 'fallback:<name>'
STEER = "steer"  # decisions/intervention of a decision the response steered


def outcome_label(success: bool, failure_reason: str, stop_step: int) -> str:
    """The outcome of one episode: success, damage (a physical failure), safe_stop (stopped, no damage), timeout."""
    if success:
        return SUCCESS
    if str(failure_reason) != TIMEOUT:
        return DAMAGE  # an unnamed failure counts as physical, as in fiper.evaluation.metrics.physical_onset
    return SAFE_STOP if stop_step >= 0 else TIMEOUT


@dataclass(frozen=True)
class EpisodeRecord:
    """What the outcome of one recorded episode needs (``fiper.evaluation.outcome.read_records`` reads a store)."""

    shift: str
    severity: float
    seed: int
    success: bool
    failure_step: int  # env step of the failure; a timeout's is its last step; -1 for a success
    failure_reason: str  # '' for a success
    alarm_step: int = -1  # env step of the first alarm (fail-safe alarms included), -1 without one
    stop_step: int = -1  # env step from which the fallback held control to the end, -1 if it did not
    acted_step: int = -1  # env step of the response's first action (steer or fallback), -1 if none
    decision_steps: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # env step of every decision
    decision_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))  # total time of every decision
    actions: np.ndarray | None = None  # (T, A) executed actions, for checking that a pair ran the same until acting
    decision_steered: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # whether each decision was steered

    @property
    def key(self) -> tuple[str, float, int]:
        return (str(self.shift), round(float(self.severity), 6), int(self.seed))

    @property
    def outcome(self) -> str:
        return outcome_label(self.success, self.failure_reason, self.stop_step)


@dataclass(frozen=True)
class ResponseOutcome:
    """One response against the same seeds run without fiper (see docs/interventions.md, "Outcome sweep")."""

    response: str
    episodes: int  # paired episodes
    outcomes: dict[str, int]  # with the response, per OUTCOMES
    without: dict[str, int]  # the same seeds without fiper
    would_be_physical: int  # failed physically without fiper
    physical_to_success: int
    physical_to_safe_stop: int
    would_be_timeout: int  # timed out without fiper
    timeout_to_success: int
    timeout_to_safe_stop: int
    successes_without: int
    successes_lost: int  # succeeded without fiper, not with the response (the nominal cost)
    false_alarm_stops: int  # succeeded without fiper, safely stopped with the response
    damage_added: int  # no physical failure without fiper, one with the response
    with_onset: int  # would-be physical failures with a known onset
    alarmed_before_onset: int  # of those, the response's run alarmed strictly before the onset
    early_saved: int  # of those alarmed before onset, the ones the response ended as a success or a safe stop
    median_warning_decisions: float  # (onset decision - alarm decision) over those alarmed before onset; NaN if none
    median_warning_s: float  # (onset - alarm) env steps x control period, same episodes
    decision_ms: float  # median total time of a decision with the response
    decision_ms_without: float  # median total time of a decision without fiper, same episodes
    cost_ratio: float  # decision_ms / decision_ms_without
    steered_decisions: int  # decisions the response steered
    steered_cost_ratio: float  # median time of a steered decision / decision_ms_without; NaN without one
    diverged: int  # pairs whose actions differ before the response first acted (should be 0)
    reward: Any = None  # a steering response's RewardOutcome (fiper.evaluation.reward_outcome); None without a reward

    def as_dict(self) -> dict:
        return asdict(self)


def count_outcomes(labels: Iterable[str]) -> dict[str, int]:
    """How many of ``labels`` are each of OUTCOMES."""
    labels = list(labels)
    return {o: labels.count(o) for o in OUTCOMES}


def _median(values: Sequence[float]) -> float:
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    return float(np.median(finite)) if finite.size else float("nan")


def decision_of(decision_steps: np.ndarray, env_step: int) -> int:
    """Decision during whose chunk ``env_step`` falls (the last decision at or before it); -1 for -1."""
    return int(onset_decision(np.asarray(decision_steps, np.int64)[None], np.array([int(env_step)]))[0])


def ran_alike(without: EpisodeRecord, response: EpisodeRecord) -> bool:
    """Whether the two runs executed the same actions until the response first acted (or to the shorter end)."""
    if without.actions is None or response.actions is None:
        return True  # nothing recorded to compare
    end = min(len(without.actions), len(response.actions))
    if response.acted_step >= 0:
        end = min(end, response.acted_step)
    return bool(np.array_equal(without.actions[:end], response.actions[:end]))


def pair(without: Sequence[EpisodeRecord], response: Sequence[EpisodeRecord]) -> list[tuple[EpisodeRecord, EpisodeRecord]]:
    """(without fiper, with the response) for every (shift, severity, seed) both hold, in the response's order."""
    by_key = {r.key: r for r in without}
    return [(by_key[r.key], r) for r in response if r.key in by_key]


def compare(name: str, without: Sequence[EpisodeRecord], response: Sequence[EpisodeRecord], control_period_s: float) -> ResponseOutcome:
    """Count what ``response`` changed over the same seeds ``without`` fiper; seconds from ``control_period_s``."""
    pairs = pair(without, response)
    base = [b.outcome for b, _ in pairs]
    got = [r.outcome for _, r in pairs]

    def moved(before: str, after: str) -> int:
        return sum(b == before and g == after for b, g in zip(base, got))

    leads_d, leads_s, with_onset, early_saved = [], [], 0, 0
    for b, r in pairs:
        onset = int(physical_onset(not b.success, b.failure_step, b.failure_reason))
        if onset < 0:
            continue
        with_onset += 1
        if alarmed_before_onset(r.alarm_step, onset):
            leads_s.append((onset - r.alarm_step) * float(control_period_s))
            leads_d.append(decision_of(b.decision_steps, onset) - decision_of(b.decision_steps, r.alarm_step))
            early_saved += r.outcome in (SUCCESS, SAFE_STOP)
    ms = _median(np.concatenate([r.decision_ms for _, r in pairs])) if pairs else float("nan")
    ms_without = _median(np.concatenate([b.decision_ms for b, _ in pairs])) if pairs else float("nan")
    steered = [r.decision_ms[r.decision_steered] for _, r in pairs if r.decision_steered.shape == r.decision_ms.shape]
    steered_ms = np.concatenate(steered) if steered else np.zeros(0)
    return ResponseOutcome(
        response=name, episodes=len(pairs), outcomes=count_outcomes(got), without=count_outcomes(base),
        would_be_physical=base.count(DAMAGE), physical_to_success=moved(DAMAGE, SUCCESS), physical_to_safe_stop=moved(DAMAGE, SAFE_STOP),
        would_be_timeout=base.count(TIMEOUT), timeout_to_success=moved(TIMEOUT, SUCCESS), timeout_to_safe_stop=moved(TIMEOUT, SAFE_STOP),
        successes_without=base.count(SUCCESS), successes_lost=sum(b == SUCCESS and g != SUCCESS for b, g in zip(base, got)),
        false_alarm_stops=moved(SUCCESS, SAFE_STOP), damage_added=sum(b != DAMAGE and g == DAMAGE for b, g in zip(base, got)),
        with_onset=with_onset, alarmed_before_onset=len(leads_s), early_saved=early_saved, median_warning_decisions=_median(leads_d), median_warning_s=_median(leads_s),
        decision_ms=ms, decision_ms_without=ms_without, cost_ratio=ms / ms_without if ms_without > 0 else float("nan"),
        steered_decisions=int(steered_ms.size),
        steered_cost_ratio=_median(steered_ms) / ms_without if steered_ms.size and ms_without > 0 else float("nan"),
        diverged=sum(not ran_alike(b, r) for b, r in pairs),
    )
