"""Why a select method took its member and threshold type: each option's validation advantage over
the first option and its standard error, recomputed with ``selection.choose_member`` on the same
validation alarms, criterion, rule and seed the engine chose with (so the evidence is the choice's own)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from fiper.evaluation.results import TaskResult, TypeResult
from fiper.evaluation.selection import MemberChoice, choose_member, stack_candidates


@dataclass(frozen=True)
class OptionEvidence:
    """One option (a member method or a threshold type) of a select choice."""

    name: str
    advantage: float  # validation criterion minus the first option's (mean over delta)
    se: float | None  # SE of that paired difference over validation resamples; None where it was not resampled
    kept: bool  # the option taken
    best: bool  # the option with the best validation criterion (what a plain choice would take)


@dataclass(frozen=True)
class ChoiceEvidence:
    """The options of one choice, the rule that chose, and why, in a sentence."""

    options: tuple[OptionEvidence, ...]
    keep_first_se: float
    reason: str

    @property
    def kept(self) -> str:
        return next(o.name for o in self.options if o.kept)


@dataclass(frozen=True)
class SelectEvidence:
    """A select method's choice on one task: its members under the chosen threshold type, and the type."""

    method: str
    criterion: str
    threshold_type: str | None  # the chosen guaranteed type (None: fewer than two guaranteed types)
    members: ChoiceEvidence  # the members under ``threshold_type`` (the first evaluated type without one)
    types: ChoiceEvidence | None  # the guaranteed types of the kept member (None: fewer than two)


def choice_reason(names: Sequence[str], choice: MemberChoice, keep_first_se: float, what: str = "member") -> str:
    """Why ``choice.index`` was taken among ``names``, in a sentence with the numbers."""
    first, best = names[0], names[choice.best]
    if keep_first_se <= 0:
        return f"plain best on validation: `{best}`"
    if choice.best == 0:
        return f"the first {what} `{first}` validates best: kept"
    adv, se = float(choice.advantage[choice.best]), float(choice.se[choice.best])
    if choice.index == 0:
        return (f"`{best}` validates best, by {adv:+.3f} over `{first}`, within {keep_first_se:g} SE "
                f"({keep_first_se * se:.3f}): the first {what} `{first}` kept")
    taken = names[choice.index]
    adv, se = float(choice.advantage[choice.index]), float(choice.se[choice.index])
    return (f"`{taken}` beats the first {what} `{first}` by {adv:+.3f}, more than {keep_first_se:g} SE "
            f"({keep_first_se * se:.3f}): taken")


def choice_evidence(names: Sequence[str], choice: MemberChoice, keep_first_se: float, what: str = "member") -> ChoiceEvidence:
    """The options of ``choice`` (from ``choose_member``) named by ``names``."""
    resampled = keep_first_se > 0 and choice.best != 0  # choose_member resamples only then
    options = tuple(OptionEvidence(str(n), float(choice.advantage[i]), float(choice.se[i]) if resampled and i else None,
                                   i == choice.index, i == choice.best) for i, n in enumerate(names))
    return ChoiceEvidence(options, float(keep_first_se), choice_reason(names, choice, keep_first_se, what))


def _choose(options: Sequence[TypeResult], task: TaskResult, criterion: str, keep_first_se: float, seed: int) -> MemberChoice:
    """choose_member on ``options``' validation alarms, with the engine's arguments."""
    split, lengths = task.split, task.rollouts.lengths
    seen = np.concatenate([split.fit, split.calibration, split.validation])
    return choose_member(stack_candidates([o.validation_alarms for o in options]), task.rollouts.failed[split.validation],
                         lengths[split.validation], int(lengths[seen].max()), criterion, keep_first_se, seed=seed)


def select_evidence(task: TaskResult, method: str, criterion: str, seed: int) -> SelectEvidence | None:
    """The evidence behind ``method``'s choice on ``task`` (None: not a select method, or alarms not kept)."""
    result = task.methods.get(method)
    if result is None or not result.spec.select:
        return None
    spec = result.spec
    kind = result.chosen.threshold_type if result.chosen is not None else next(iter(result.types))
    members = [task.methods[m].types[kind] for m in spec.select]
    if any(m.validation_alarms is None for m in members):
        return None
    member_choice = choice_evidence(spec.select, _choose(members, task, criterion, spec.keep_first_se, seed), spec.keep_first_se)
    guaranteed = [r for r in result.types.values() if r.guaranteed]
    types = None
    if len(guaranteed) > 1:
        names = [r.threshold_type for r in guaranteed]
        types = choice_evidence(names, _choose(guaranteed, task, criterion, spec.keep_first_se, seed), spec.keep_first_se,
                                "threshold type")
    return SelectEvidence(method, criterion, result.chosen.threshold_type if result.chosen is not None else None,
                          member_choice, types)
