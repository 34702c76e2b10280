"""What an offline evaluation returns: immutable results, built once by the engine (engine.py).

Renderers (fiper.evaluation.render) and the deploy step (deploy.py) read these; nothing fills
them in later.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from fiper.evaluation.cells import CellCounts
from fiper.evaluation.config import EvaluationConfig, MethodSpec
from fiper.evaluation.grid import CandidateAlarms, ScoreGrid
from fiper.evaluation.records import metric_records
from fiper.evaluation.rollouts import RolloutSet
from fiper.evaluation.scoring import ScoredRollouts
from fiper.evaluation.splits import Split

if TYPE_CHECKING:
    from fiper.evaluation.findings import TaskFindings

CHOSEN = "chosen"  # record label of the guaranteed threshold type a method chose on validation


def slug(text: str) -> str:
    """A file-name-safe version of a task name ('Meta-World/MT1' -> 'Meta-World_MT1')."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "task"


@dataclass(frozen=True)
class TypeResult:
    """One method under one threshold type: validation selection and test metrics."""

    threshold_type: str
    guaranteed: bool
    candidates: list[tuple[int, ...]]  # window index per score
    validation: dict[str, np.ndarray]  # criterion -> (C,) means over delta
    candidate: int  # index into candidates of the window candidate chosen on validation
    windows: dict[str, int | str]  # score -> chosen window label
    window_steps: dict[str, int]  # score -> chosen window in decisions
    test: dict[str, Any]  # metrics, arrays over the delta grid
    test_alarms: CandidateAlarms  # the chosen candidate on the test episodes
    selected: str | None = None  # for a 'select' method: the member method chosen on validation
    validation_alarms: CandidateAlarms | None = None  # the chosen candidate on the validation episodes

    def validated(self, criterion: str) -> float:
        """The chosen candidate's validation value of ``criterion`` (mean over delta)."""
        return float(self.validation[criterion][self.candidate])


@dataclass(frozen=True)
class MethodResult:
    spec: MethodSpec
    types: dict[str, TypeResult]
    # the guaranteed threshold type whose chosen window validates best (its threshold_type says
    # which); None when fewer than two guaranteed types were evaluated
    chosen: TypeResult | None = None

    def results(self) -> Iterator[tuple[str, TypeResult]]:
        """(label, result) per evaluated threshold type, then (CHOSEN, result) when a type was chosen."""
        yield from self.types.items()
        if self.chosen is not None:
            yield CHOSEN, self.chosen

    def result(self, label: str) -> TypeResult:
        if label == CHOSEN and self.chosen is not None:
            return self.chosen
        if label not in self.types:
            raise KeyError(f"threshold type {label!r} was not evaluated for {self.spec.name!r}; have {[k for k, _ in self.results()]}")
        return self.types[label]


@dataclass(frozen=True)
class TaskResult:
    """Everything evaluated on one task."""

    task: str
    rollouts: RolloutSet
    split: Split
    deltas: tuple[float, ...]
    scored: ScoredRollouts
    grids: dict[str, ScoreGrid]  # thresholds the test metrics use
    methods: dict[str, MethodResult]
    seconds: dict[str, float] = field(default_factory=dict)
    # refit_after_selection: thresholds the validation selection used (fitted on other calibration
    # rollouts than ``grids``) and the two calibration halves; None / the whole calibration split otherwise
    selection_grids: dict[str, ScoreGrid] | None = None
    calibration_parts: tuple[np.ndarray, np.ndarray] | None = None
    live: list[dict[str, Any]] = field(default_factory=list)  # live monitors' recorded alarms (live.py)
    cells: tuple[CellCounts, ...] = ()  # rollouts per stress cell (cells.py)
    findings: TaskFindings | None = None  # what the report leads with (findings.py)
    left_out: str = ""  # which configured methods read an input the stores lack, and were not evaluated (runnable.py)

    @property
    def split_sizes(self) -> dict[str, dict[str, int]]:
        return self.split.sizes(self.rollouts.success, self.rollouts.ood)

    def spec_of(self, name: str, kind: str) -> MethodSpec:
        """The spec that ran: a 'select' method's chosen member for this threshold type (or CHOSEN)."""
        selected = self.methods[name].result(kind).selected
        return self.methods[selected if selected else name].spec

    def rows(self) -> Iterator[tuple[str, str, TypeResult]]:
        """(method, record label, result) in configuration order, each method's chosen row last."""
        for name, method in self.methods.items():
            for kind, res in method.results():
                yield name, kind, res

    def records(self) -> list[dict[str, Any]]:
        out = []
        for name, kind, res in self.rows():
            spec = self.spec_of(name, kind)
            identity = {
                "task": self.task, "method": name, "scores": list(spec.scores), "rule": spec.rule,
                "joint": spec.joint, "selected": res.selected,
                "threshold_type": kind, "chosen_type": res.threshold_type if kind == CHOSEN else None,
                "guaranteed": res.guaranteed,
                "window": dict(res.windows), "window_decisions": dict(res.window_steps),
                "n_test": int(self.split.test.size),
            }
            out.extend(metric_records(identity, self.deltas, res.test))
        return out


@dataclass(frozen=True)
class EvaluationResult:
    config: EvaluationConfig
    tasks: Mapping[str, TaskResult]

    def records(self) -> list[dict[str, Any]]:
        return [r for task in self.tasks.values() for r in task.records()]
