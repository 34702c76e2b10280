"""Choose a method's window, and a select method's member, on the validation episodes only.

Each candidate is scored by the configured criterion averaged over the delta grid (balanced
accuracy by default); ties go to the higher mean TWA, then to the earlier candidate (smaller
windows come first in the configured order). NaN (e.g. no failures in validation) ranks last.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fiper.evaluation.config import CRITERIA, criterion_value
from fiper.evaluation.grid import CandidateAlarms
from fiper.evaluation.metrics import detection_metrics
from fiper.evaluation.ranking import auroc


def criterion_values(alarms: CandidateAlarms, failed: np.ndarray, lengths: np.ndarray, max_decisions: int) -> dict[str, np.ndarray]:
    """Per candidate (C,): balanced accuracy, TWA, AUROC and their accuracy-TWA mean, each averaged
    over the delta grid."""
    m = detection_metrics(alarms.first_alarm, failed, lengths, max_decisions)
    per_delta = {"accuracy": np.asarray(m.accuracy, float), "twa": np.asarray(m.twa, float),
                 "auroc": np.asarray(auroc(alarms.max_ratio, failed), float)}
    values = {name: v.reshape(v.shape[0], -1).mean(axis=1) for name, v in per_delta.items()}
    values["accuracy_twa"] = criterion_value("accuracy_twa", values.__getitem__)
    return values


def choose_candidate(values: dict[str, np.ndarray], criterion: str = "accuracy") -> int:
    """Index of the best candidate: highest criterion, then highest TWA, then the first."""
    if criterion not in CRITERIA:
        raise ValueError(f"selection criterion {criterion!r} unknown; expected one of {CRITERIA}")

    def key(name: str) -> np.ndarray:
        v = np.round(np.asarray(values[name], dtype=np.float64), 12)  # equal up to float noise -> a tie
        return np.where(np.isnan(v), -np.inf, v)

    primary, secondary = key(criterion), key("twa")
    order = np.lexsort((np.arange(primary.size), -secondary, -primary))
    return int(order[0])


def stack_candidates(alarms: list[CandidateAlarms]) -> CandidateAlarms:
    """One CandidateAlarms holding the first candidate of each of ``alarms`` (e.g. each member's chosen window)."""
    return CandidateAlarms([a.candidates[0] for a in alarms], np.concatenate([a.first_alarm[:1] for a in alarms]),
                           np.concatenate([a.max_ratio[:1] for a in alarms]))


@dataclass(frozen=True)
class MemberChoice:
    """Which member a select method takes, and the evidence: each member's validation advantage over
    the first member and its standard error over stratified validation resamples."""

    index: int
    best: int  # the member with the best validation criterion (what a plain choice would take)
    advantage: np.ndarray  # (M,) validation criterion minus the first member's
    se: np.ndarray  # (M,) bootstrap SE of that paired difference (0 for the first member)


def choose_member(members: CandidateAlarms, failed: np.ndarray, lengths: np.ndarray, max_decisions: int,
                  criterion: str = "accuracy_twa", keep_first_se: float = 0.0, *, resamples: int = 200,
                  seed: int = 0) -> MemberChoice:
    """The member to deploy: the first one unless another beats it on validation by more than
    ``keep_first_se`` standard errors of the paired difference (then the best of those by the criterion).

    A member that wins on validation by less than the validation set's own resampling noise wins
    by the luck of which episodes landed there, and that choice does not transfer to new episodes;
    the first member (the published rule) is the prior that needs evidence to be given up. The SE is
    the sd of the paired criterion difference over ``resamples`` bootstrap resamples of the validation
    episodes, drawn within failures and within successes (seeded). ``keep_first_se=0`` is the
    plain best member (``choose_candidate``'s rule).
    """
    values = criterion_values(members, failed, lengths, max_decisions)
    best = choose_candidate(values, criterion)
    crit = np.asarray(values[criterion], dtype=np.float64)
    advantage = crit - crit[0]
    se = np.zeros(crit.size)
    if keep_first_se <= 0 or best == 0:
        return MemberChoice(best, best, advantage, se)
    failed = np.asarray(failed, dtype=bool)
    rng = np.random.default_rng(seed)
    strata = [np.flatnonzero(failed), np.flatnonzero(~failed)]
    diffs = np.empty((resamples, crit.size))
    for r in range(resamples):
        idx = np.concatenate([rng.choice(s, s.size) for s in strata if s.size])
        sub = CandidateAlarms(members.candidates, members.first_alarm[..., idx], members.max_ratio[..., idx])
        v = np.asarray(criterion_values(sub, failed[idx], lengths[idx], max_decisions)[criterion], dtype=np.float64)
        diffs[r] = v - v[0]
    se = np.nanstd(diffs, axis=0, ddof=1)
    clear = np.flatnonzero((advantage > keep_first_se * se) & np.isfinite(advantage))
    if clear.size == 0:
        return MemberChoice(0, best, advantage, se)
    sub_values = {k: np.asarray(v)[clear] for k, v in values.items()}
    return MemberChoice(int(clear[choose_candidate(sub_values, criterion)]), best, advantage, se)
