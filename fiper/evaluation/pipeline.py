"""Offline evaluation of recorded rollouts: split, fit, score, calibrate, select on validation, test.

    stores --load/merge by task--> RolloutSet --split--> fit | calibration | validation | test
    fit      -> each score fitted once; all episodes scored once (score_offline)
    calib.   -> thresholds per (score, window, threshold type, delta)
    valid.   -> each method's window per threshold type (criterion averaged over delta)
    test     -> metrics of every method x threshold type x delta at the chosen window, and of each
                method's guaranteed threshold type chosen on validation (records label 'chosen')

See docs/evaluation.md.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from calibration import JOINT_KINDS, THRESHOLD_KINDS
from fiper.evaluation.config import EvaluationConfig, MethodSpec
from fiper.evaluation.grid import CandidateAlarms, ScoreGrid, build_score_grid, candidate_alarms
from fiper.evaluation.joint import joint_candidate_alarms
from fiper.evaluation.live import live_results
from fiper.evaluation.records import chosen_metrics, metric_records, padded_env_steps
from fiper.evaluation.rollouts import RolloutSet, load_rollouts
from fiper.evaluation.scoring import ScoredRollouts, fit_and_score, resolve_specs
from fiper.evaluation.selection import choose_candidate, criterion_values
from fiper.evaluation.splits import Split, calibration_halves, check_calibration_size, split_episodes
from fiper.monitor.padding import to_padded

CHOSEN = "chosen"  # record label of the guaranteed threshold type a method chose on validation


@dataclass
class TypeResult:
    """One method under one threshold type: validation selection and test metrics."""

    threshold_type: str
    guaranteed: bool
    candidates: list[tuple[int, ...]]  # window index per score
    validation: dict[str, np.ndarray]  # criterion -> (C,) means over delta
    chosen: int  # index into candidates
    windows: dict[str, int | str]  # score -> chosen window label
    window_steps: dict[str, int]  # score -> chosen window in decisions
    test: dict[str, Any]  # metrics, arrays over the delta grid
    test_alarms: CandidateAlarms  # the chosen candidate on the test episodes
    selected: str | None = None  # for a 'select' method: the member method chosen on validation


@dataclass
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


@dataclass
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

    @functools.cached_property
    def live(self) -> list[dict[str, Any]]:
        """Metrics of the alarms recorded by live monitors during these rollouts (fiper.evaluation.live)."""
        return live_results(self.rollouts)

    @property
    def split_sizes(self) -> dict[str, dict[str, int]]:
        return self.split.sizes(self.rollouts.success, self.rollouts.ood)

    def spec_of(self, name: str, kind: str) -> MethodSpec:
        """The spec that ran: a 'select' method's chosen member for this threshold type (or CHOSEN)."""
        selected = self.methods[name].result(kind).selected
        return self.methods[selected if selected else name].spec

    def records(self) -> list[dict[str, Any]]:
        out = []
        for name, method in self.methods.items():
            for kind, res in method.results():
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


@dataclass
class EvaluationResult:
    config: EvaluationConfig
    tasks: dict[str, TaskResult]

    def records(self) -> list[dict[str, Any]]:
        return [r for task in self.tasks.values() for r in task.records()]


def _score_windows(config: EvaluationConfig) -> dict[str, tuple[int | str, ...]]:
    """Per score, the union of the window labels its methods use (global order first)."""
    out: dict[str, list[int | str]] = {}
    for method in config.methods.values():
        for score in method.scores:
            labels = out.setdefault(score, [])
            labels.extend(w for w in config.method_windows(method) if w not in labels)
    order = {w: i for i, w in enumerate(config.windows)}
    return {s: tuple(sorted(ls, key=lambda w: (order.get(w, len(order)), str(w)))) for s, ls in out.items()}


def _evaluate_method(spec: MethodSpec, kind: str, task: TaskResult, config: EvaluationConfig, env_steps: np.ndarray) -> TypeResult:
    """Select the window on validation, then measure the chosen configuration on test.

    DT's normaliser (max decisions) is the longest non-test episode during selection, so not even
    test lengths reach it, and the longest episode of the task on test. With refit_after_selection
    the selection sees thresholds from one calibration half and test the other half's.
    """
    ro, split = task.rollouts, task.split
    lengths = ro.lengths
    seen = np.concatenate([split.fit, split.calibration, split.validation])
    cal_select, cal_final = task.calibration_parts or (split.calibration, split.calibration)
    select_grids = task.selection_grids or task.grids

    def alarms(grids, idx, episodes, calibration):
        mine = [grids[s] for s in spec.scores]
        if spec.joint and kind in JOINT_KINDS:  # time-varying thresholds have no guarantee to share: per score
            return joint_candidate_alarms(mine, idx, kind, spec.rule, episodes, lengths, calibration, config.deltas,
                                          d1_fraction=config.band_d1_fraction, seed=config.seed)
        return candidate_alarms(mine, idx, kind, spec.rule, episodes, lengths)

    mine = [task.grids[s] for s in spec.scores]
    indices = [[g.index(w) for w in config.method_windows(spec)] for g in mine]
    val = alarms(select_grids, indices, split.validation, cal_select)
    values = criterion_values(val, ro.failed[split.validation], lengths[split.validation], int(lengths[seen].max()))
    chosen = choose_candidate(values, config.selection)
    pick = val.candidates[chosen]
    test = alarms(task.grids, [[i] for i in pick], split.test, cal_final)
    metrics = chosen_metrics(test, ro, split.test, env_steps, int(lengths.max()))
    return TypeResult(
        threshold_type=kind,
        guaranteed=THRESHOLD_KINDS[kind],
        candidates=val.candidates,
        validation=values,
        chosen=chosen,
        windows={g.name: g.labels[i] for g, i in zip(mine, pick)},
        window_steps={g.name: int(g.windows[i]) for g, i in zip(mine, pick)},
        test=metrics,
        test_alarms=test,
    )


def _best_validated(options: Sequence[TypeResult], criterion: str) -> int:
    """Index of the option whose chosen window validates best (same criterion and tie rule as the windows)."""
    values = {c: np.array([r.validation[c][r.chosen] for r in options]) for c in options[0].validation}
    return choose_candidate(values, criterion)


def _select_member(spec: MethodSpec, kind: str, task: TaskResult, config: EvaluationConfig) -> TypeResult:
    """The member whose chosen window validates best."""
    members = [task.methods[m].types[kind] for m in spec.select]
    best = _best_validated(members, config.selection)
    return dataclasses.replace(members[best], selected=spec.select[best])


def choose_threshold_type(method: MethodResult, criterion: str) -> TypeResult | None:
    """The guaranteed threshold type that validates best (ties: configuration order); None with fewer than two."""
    options = [r for r in method.types.values() if r.guaranteed]
    return options[_best_validated(options, criterion)] if len(options) > 1 else None


def evaluate_task(rollouts: RolloutSet, config: EvaluationConfig) -> TaskResult:
    """The whole pipeline on one task's merged rollouts."""
    from tqdm.auto import tqdm

    clock = {"start": time.perf_counter()}
    s = config.split
    split = split_episodes(rollouts.success, rollouts.ood, fit=s.fit, calibration=s.calibration, validation=s.validation, seed=config.seed)
    n_id = int((rollouts.success & ~rollouts.ood).sum())
    check_calibration_size(rollouts.task, n_id, split, config.threshold_types, config.deltas,
                           calibration=s.calibration, d1_fraction=config.band_d1_fraction,
                           joint=any(m.joint for m in config.methods.values()), halves=config.refit_after_selection)
    for part in ("validation", "test"):
        if split.part(part).size == 0:
            raise ValueError(f"task {rollouts.task!r}: the {part} split is empty ({rollouts.n_episodes} episodes); record more rollouts")
    specs = resolve_specs(config.scores, config.used_scores, rollouts)
    scored = fit_and_score(rollouts, split.fit, specs, seed=config.seed, device=config.device, progress=config.progress)
    clock["scored"] = time.perf_counter()
    lengths = rollouts.lengths
    parts = calibration_halves(split.calibration, config.seed) if config.refit_after_selection else None
    grids, selection_grids = {}, ({} if parts else None)
    for score, labels in tqdm(list(_score_windows(config).items()), desc=f"{rollouts.task}: calibrate", disable=not config.progress):
        padded, _ = to_padded(scored.raw[score], rollouts.decision_ends)

        def grid(calibration: np.ndarray) -> ScoreGrid:
            return build_score_grid(score, padded, lengths, labels, calibration, config.threshold_types, config.deltas,
                                    d1_fraction=config.band_d1_fraction, seed=config.seed)

        grids[score] = grid(parts[1] if parts else split.calibration)
        if parts:
            selection_grids[score] = grid(parts[0])
    clock["calibrated"] = time.perf_counter()
    task = TaskResult(rollouts.task, rollouts, split, config.deltas, scored, grids, {},
                      selection_grids=selection_grids, calibration_parts=parts)
    env_steps = padded_env_steps(rollouts)
    cells = [(m, k) for m in config.methods.values() if not m.select for k in config.threshold_types]
    for spec, kind in tqdm(cells, desc=f"{rollouts.task}: select + test", disable=not config.progress):
        result = _evaluate_method(spec, kind, task, config, env_steps)
        task.methods.setdefault(spec.name, MethodResult(spec, {})).types[kind] = result
    for spec in (m for m in config.methods.values() if m.select):
        task.methods[spec.name] = MethodResult(spec, {k: _select_member(spec, k, task, config) for k in config.threshold_types})
    for method in task.methods.values():
        method.chosen = choose_threshold_type(method, config.selection)
    clock["done"] = time.perf_counter()
    task.seconds = {
        "fit_and_score": clock["scored"] - clock["start"],
        "calibrate": clock["calibrated"] - clock["scored"],
        "select_and_test": clock["done"] - clock["calibrated"],
        **{f"fit/{n}": v for n, v in scored.fit_seconds.items()},
        **{f"score/{n}": v for n, v in scored.score_seconds.items()},
    }
    return task


def evaluate_rollouts(stores: str | Sequence[str], config: EvaluationConfig | dict | None = None) -> EvaluationResult:
    """Evaluate every configured method on the rollouts of ``stores`` (paths, globs, dirs; merged by task)."""
    if not isinstance(config, EvaluationConfig):
        config = EvaluationConfig.from_mapping(config)
    return evaluate_tasks(load_rollouts(stores, control_period_s=config.control_period_s, progress=config.progress), config)


def evaluate_tasks(tasks: dict[str, RolloutSet], config: EvaluationConfig) -> EvaluationResult:
    """Evaluate already loaded rollouts (one RolloutSet per task) with ``config``."""
    return EvaluationResult(config, {name: evaluate_task(ro, config) for name, ro in tasks.items()})
