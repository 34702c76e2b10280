"""What the report leads with, computed once per task: the deployed row, the best baseline, the
best reference and every method's margin over it, the other methods, the per-metric winners on
test, FAR-ID checks and the detection per stress cell.

Method names come from the configuration (``deploy_method``, ``baselines``, ``references``), never from here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from fiper.evaluation.config import EvaluationConfig, criterion_value
from fiper.evaluation.detection import DetectionTable, cell_detection
from fiper.evaluation.results import CHOSEN

MIXED_ROWS = "deployable"  # detection tables' label when methods' deployable rows are of different kinds

if TYPE_CHECKING:
    from fiper.evaluation.results import MethodResult, TaskResult, TypeResult

FAR_SE_MULTIPLE = 2.0  # FAR-ID above delta + this many binomial SEs sqrt(delta (1 - delta) / n) is flagged
WINNER_METRICS = ("twa", "accuracy")
MARGIN_METRICS = ("accuracy", "twa")  # a method's margin over the best reference, test means over delta
# scope -> which rows compete: guaranteed types, all types, or each method's validation-chosen row
WINNER_SCOPES = ("guaranteed", "all", "chosen")


@dataclass(frozen=True)
class Row:
    """One row of the grid: a method and its record label (a threshold type, or 'chosen')."""

    method: str
    label: str


@dataclass(frozen=True)
class Winner:
    scope: str  # one of WINNER_SCOPES
    metric: str  # one of WINNER_METRICS
    row: Row
    value: float  # test mean over delta


@dataclass(frozen=True)
class Margin:
    """A method's deployable row minus the best reference row: test Acc and TWA, means over delta."""

    row: Row
    reference: Row
    accuracy: float
    twa: float


@dataclass(frozen=True)
class FarCheck:
    """FAR on in-distribution test successes of one row at one delta, where it exceeds delta."""

    row: Row  # Row(<monitor dir>, 'live') for a live monitor
    threshold_type: str
    delta: float
    flagged: int
    n: int
    far: float
    bound: float  # delta + FAR_SE_MULTIPLE * sqrt(delta (1 - delta) / n)

    @property
    def above_bound(self) -> bool:
        return self.far > self.bound + 1e-12


@dataclass(frozen=True)
class TaskFindings:
    criterion: str  # the selection criterion, also used to rank baselines on test
    deploy_method: str | None
    deployed: Row | None  # deploy_method's deployable row (None: no deploy method, or no guaranteed type)
    best_baseline: Row | None  # the baseline whose deployable row has the best test criterion
    best_reference: Row | None  # the configured reference whose deployable row has the best test criterion
    references: tuple[Row, ...]  # every configured reference's deployable row
    others: tuple[Row, ...]  # every other method's deployable row (neither deployed, baseline nor reference)
    margins: tuple[Margin, ...]  # every non-reference method's deployable row against the best reference
    winners: tuple[Winner, ...]
    far_checks: tuple[FarCheck, ...]  # every guaranteed row (and live monitor) x delta with FAR-ID > delta
    detection: DetectionTable

    def far_above_bound(self) -> tuple[FarCheck, ...]:
        return tuple(c for c in self.far_checks if c.above_bound)

    @property
    def deployed_margin(self) -> Margin | None:
        """The deployed row's margin over the best reference (None without either)."""
        return next((m for m in self.margins if m.row == self.deployed), None)


def mean_over_delta(res: TypeResult, metric: str) -> float:
    return float(np.mean(np.asarray(res.test[metric], dtype=np.float64)))


def criterion_on_test(res: TypeResult, criterion: str) -> float:
    """The selection criterion on test (means over delta, as validation computes it)."""
    return criterion_value(criterion, lambda metric: mean_over_delta(res, metric))


def deployable_label(method: MethodResult) -> str | None:
    """The row a method deploys: its chosen row, else its only guaranteed type, else None."""
    if method.chosen is not None:
        return CHOSEN
    return next((k for k, r in method.types.items() if r.guaranteed), None)


def _deployable(task: TaskResult, name: str) -> Row | None:
    label = deployable_label(task.methods[name])
    return None if label is None else Row(name, label)


def _best(rows: list[tuple[Row, float]]) -> tuple[Row, float] | None:
    """The first row with the highest finite value."""
    best = None
    for row, value in rows:
        if math.isfinite(value) and (best is None or value > best[1]):
            best = (row, value)
    return best


def in_scope(scope: str, label: str, res: TypeResult) -> bool:
    """Whether a row competes in a winner scope (WINNER_SCOPES)."""
    if scope == "guaranteed":
        return res.guaranteed and label != CHOSEN
    return label == CHOSEN if scope == "chosen" else label != CHOSEN


def _winners(task: TaskResult) -> tuple[Winner, ...]:
    out = []
    for scope in WINNER_SCOPES:
        for metric in WINNER_METRICS:
            rows = [(Row(m, k), mean_over_delta(r, metric)) for m, k, r in task.rows() if in_scope(scope, k, r)]
            best = _best(rows)
            if best is not None:
                out.append(Winner(scope, metric, *best))
    return tuple(out)


def far_check(row: Row, kind: str, delta: float, flagged: int, n: int) -> FarCheck | None:
    """The check of ``flagged`` / ``n`` against ``delta``; None when n = 0 or FAR-ID <= delta."""
    if n <= 0 or flagged / n <= delta + 1e-12:
        return None
    return FarCheck(row, kind, float(delta), int(flagged), int(n), flagged / n,
                    delta + FAR_SE_MULTIPLE * math.sqrt(delta * (1.0 - delta) / n))


def _margins(task: TaskResult, rows: list[Row], reference: Row | None) -> tuple[Margin, ...]:
    """Each row's test Acc and TWA (means over delta) minus those of ``reference``."""
    if reference is None:
        return ()
    ref = task.methods[reference.method].result(reference.label)
    out = []
    for row in rows:
        res = task.methods[row.method].result(row.label)
        out.append(Margin(row, reference, *(mean_over_delta(res, m) - mean_over_delta(ref, m) for m in MARGIN_METRICS)))
    return tuple(out)


def _far_checks(task: TaskResult) -> tuple[FarCheck, ...]:
    out = []
    for name, kind, res in task.rows():
        if not res.guaranteed or kind == CHOSEN:  # time-varying promises nothing; chosen repeats a type
            continue
        n = int(res.test["success_id_n"])
        flagged = np.asarray(res.test["success_id_flagged"])
        for i, delta in enumerate(task.deltas):
            check = far_check(Row(name, kind), kind, delta, int(flagged[i]), n)
            if check is not None:
                out.append(check)
    for live in task.live:
        if live["delta"] is not None:
            check = far_check(Row(live["monitor"], "live"), live["setting"], live["delta"], live["far_id_flagged"], live["far_id_n"])
            if check is not None:
                out.append(check)
    return tuple(out)


def detection_alarms(task: TaskResult) -> tuple[str, dict[str, np.ndarray], dict[str, str]]:
    """The rows the detection tables read: each method's deployable row (its chosen threshold type, else its only
    guaranteed one, else its first evaluated type), as (label, {method: (n_deltas, n_test) first alarms},
    {method: threshold type}); label 'chosen' when every method has a chosen row."""
    alarms, types, labels = {}, {}, set()
    for name, method in task.methods.items():
        label = deployable_label(method) or next(iter(method.types))
        res = method.result(label)
        alarms[name], types[name] = res.test_alarms.first_alarm[0], res.threshold_type
        labels.add(label)
    return (labels.pop() if len(labels) == 1 else MIXED_ROWS), alarms, types


def task_findings(task: TaskResult, config: EvaluationConfig) -> TaskFindings:
    deploy = config.deploy_method if config.deploy_method in task.methods else None
    deployed = _deployable(task, deploy) if deploy else None
    def role(names) -> list[Row]:
        return [r for r in (_deployable(task, n) for n in names if n in task.methods) if r is not None]

    def best_of(rows: list[Row]) -> Row | None:
        best = _best([(r, criterion_on_test(task.methods[r.method].result(r.label), config.selection)) for r in rows])
        return best[0] if best else (rows[0] if rows else None)

    baselines, references = role(config.baselines), role(config.references)
    others = role(n for n in task.methods if n != deploy and n not in config.baselines and n not in config.references)
    best_reference = best_of(references)
    competing = role(n for n in task.methods if n not in config.references)
    label, first_alarms, types = detection_alarms(task)
    detection = cell_detection(task.rollouts, task.split.test, task.deltas, first_alarms, label, config.plot_delta, types)
    return TaskFindings(config.selection, deploy, deployed, best_of(baselines), best_reference, tuple(references), tuple(others),
                        _margins(task, competing, best_reference), _winners(task), _far_checks(task), detection)
