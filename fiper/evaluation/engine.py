"""Offline evaluation of recorded rollouts: split, fit, score, calibrate, select on validation, test.

    stores --load/merge by task--> RolloutSet --split--> fit | calibration | validation | test
    fit      -> each score fitted once; all episodes scored once (score_offline)
    calib.   -> thresholds per (score, window, threshold type, delta)
    valid.   -> each method's window per threshold type (criterion averaged over delta)
    test     -> metrics of every method x threshold type x delta at the chosen window, and of each
                method's guaranteed threshold type chosen on validation (records label 'chosen')
    result   -> immutable TaskResult (results.py) with its findings (findings.py), built once

Rendering (report.md, metrics.json, plots) is fiper.evaluation.render; deploying the choice is
fiper.evaluation.deploy. See docs/evaluation.md.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from calibration import JOINT_KINDS, THRESHOLD_KINDS
from fiper.evaluation.cells import cell_counts
from fiper.evaluation.config import EvaluationConfig, MethodSpec
from fiper.evaluation.findings import task_findings
from fiper.evaluation.grid import CandidateAlarms, ScoreGrid, build_score_grid, candidate_alarms
from fiper.evaluation.joint import joint_candidate_alarms
from fiper.evaluation.live import live_results
from fiper.evaluation.records import chosen_metrics, padded_env_steps
from fiper.evaluation.results import EvaluationResult, MethodResult, TaskResult, TypeResult
from fiper.evaluation.rollouts import RolloutError, RolloutSet, load_rollouts
from fiper.evaluation.runnable import runnable_config
from fiper.evaluation.scoring import fit_and_score, resolve_specs
from fiper.evaluation.selection import choose_candidate, choose_member, criterion_values, stack_candidates
from fiper.evaluation.splits import Split, calibration_halves, check_calibration_size, split_episodes
from fiper.rules import guarantees_delta
from fiper.monitor.padding import to_padded



@dataclass(frozen=True)
class _Calibrated:
    """What every method's selection and test read: the episodes, their split and the thresholds."""

    rollouts: RolloutSet
    split: Split
    grids: dict[str, ScoreGrid]
    selection_grids: dict[str, ScoreGrid] | None
    calibration_parts: tuple[np.ndarray, np.ndarray] | None


def _score_windows(config: EvaluationConfig) -> dict[str, tuple[int | str, ...]]:
    """Per score, the union of the window labels its methods use (global order first)."""
    out: dict[str, list[int | str]] = {}
    for method in config.methods.values():
        for score in method.scores:
            labels = out.setdefault(score, [])
            labels.extend(w for w in config.method_windows(method, score) if w not in labels)
    order = {w: i for i, w in enumerate(config.windows)}
    return {s: tuple(sorted(ls, key=lambda w: (order.get(w, len(order)), str(w)))) for s, ls in out.items()}


def _evaluate_method(spec: MethodSpec, kind: str, task: _Calibrated, config: EvaluationConfig, env_steps: np.ndarray) -> TypeResult:
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
    indices = [[g.index(w) for w in config.method_windows(spec, g.name)] for g in mine]
    val = alarms(select_grids, indices, split.validation, cal_select)
    values = criterion_values(val, ro.failed[split.validation], lengths[split.validation], int(lengths[seen].max()))
    chosen = choose_candidate(values, config.selection)
    pick = val.candidates[chosen]
    test = alarms(task.grids, [[i] for i in pick], split.test, cal_final)
    metrics = chosen_metrics(test, ro, split.test, env_steps, int(lengths.max()))
    return TypeResult(
        threshold_type=kind,
        guaranteed=THRESHOLD_KINDS[kind] and guarantees_delta(spec.rule, len(spec.scores), spec.joint),
        candidates=val.candidates,
        validation=values,
        candidate=chosen,
        windows={g.name: g.labels[i] for g, i in zip(mine, pick)},
        window_steps={g.name: int(g.windows[i]) for g, i in zip(mine, pick)},
        test=metrics,
        test_alarms=test,
        validation_alarms=CandidateAlarms([pick], val.first_alarm[chosen : chosen + 1], val.max_ratio[chosen : chosen + 1]),
    )


def _best_validated(options: Sequence[TypeResult], criterion: str) -> int:
    """Index of the option whose chosen window validates best (same criterion and tie rule as the windows)."""
    values = {c: np.array([r.validation[c][r.candidate] for r in options]) for c in options[0].validation}
    return choose_candidate(values, criterion)


def _select_member(spec: MethodSpec, kind: str, evaluated: Mapping[str, dict[str, TypeResult]], task: _Calibrated,
                   config: EvaluationConfig) -> TypeResult:
    """The member whose chosen window validates best; with keep_first_se, the first member unless another
    beats it by more than that many standard errors over validation resamples (selection.choose_member)."""
    members = [evaluated[m][kind] for m in spec.select]
    best = _keep_first(members, task, config, spec.keep_first_se)
    return dataclasses.replace(members[best], selected=spec.select[best])


def _keep_first(options: Sequence[TypeResult], task: _Calibrated, config: EvaluationConfig, keep_first_se: float) -> int:
    """Index of the option to take: the best validated one, or with keep_first_se > 0 the first unless
    another beats it on validation by more than keep_first_se standard errors (selection.choose_member)."""
    if keep_first_se <= 0:
        return _best_validated(options, config.selection)
    split, lengths = task.split, task.rollouts.lengths
    seen = np.concatenate([split.fit, split.calibration, split.validation])
    return choose_member(stack_candidates([o.validation_alarms for o in options]), task.rollouts.failed[split.validation],
                         lengths[split.validation], int(lengths[seen].max()), config.selection, keep_first_se,
                         seed=config.seed).index


def choose_threshold_type(method: MethodResult, criterion: str) -> TypeResult | None:
    """The guaranteed threshold type that validates best (ties: configuration order); None with fewer than two."""
    options = [r for r in method.types.values() if r.guaranteed]
    return options[_best_validated(options, criterion)] if len(options) > 1 else None


def evaluate_task(rollouts: RolloutSet, config: EvaluationConfig) -> TaskResult:
    """The whole evaluation of one task's merged rollouts."""
    from tqdm.auto import tqdm

    clock = {"start": time.perf_counter()}
    config, left_out = runnable_config(config, rollouts.recorded, rollouts.task, rollouts.unreadable)
    s = config.split
    if rollouts.ood.all():
        labels = sorted(set(rollouts.shift.tolist()))
        raise RolloutError(
            f"task {rollouts.task!r}: no episode is labelled in distribution; meta/shift holds {labels[:8]}. An episode "
            "without a shift must carry meta/shift == 'none' exactly: the in-distribution successes fit and calibrate "
            "every score"
        )
    split = split_episodes(rollouts.success, rollouts.ood, fit=s.fit, calibration=s.calibration, validation=s.validation, seed=config.seed)
    n_id = int((rollouts.success & ~rollouts.ood).sum())
    check_calibration_size(rollouts.task, n_id, split, config.threshold_types, config.deltas,
                           calibration=s.calibration, d1_fraction=config.band_d1_fraction,
                           joint=any(m.joint for m in config.methods.values()), halves=config.refit_after_selection)
    for part in ("validation", "test"):
        if split.part(part).size == 0:
            raise ValueError(f"task {rollouts.task!r}: the {part} split is empty ({rollouts.n_episodes} episodes); record more rollouts")
    n_failed = int((~rollouts.success).sum())
    if not (~rollouts.success[split.validation]).any():
        where = f"all {rollouts.n_episodes} episodes of its stores succeeded" if not n_failed else \
            f"its validation split holds none of its {n_failed} failures"
        raise ValueError(f"task {rollouts.task!r}: {where}, so no detector can be scored or chosen (TPR, accuracy and TWA need "
                         "failures, and the deployed configuration is chosen on validation). Add rollouts where the policy fails: "
                         "stress cells with shifts that break it (launch.stress cells=..., launch.pipeline rollouts.cells), more "
                         "seeds per cell, or stronger severities")
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
    calibrated = _Calibrated(rollouts, split, grids, selection_grids, parts)
    env_steps = padded_env_steps(rollouts)
    cells = [(m, k) for m in config.methods.values() if not m.select for k in config.threshold_types]
    evaluated: dict[str, dict[str, TypeResult]] = {}
    for spec, kind in tqdm(cells, desc=f"{rollouts.task}: select + test", disable=not config.progress):
        evaluated.setdefault(spec.name, {})[kind] = _evaluate_method(spec, kind, calibrated, config, env_steps)
    for spec in (m for m in config.methods.values() if m.select):
        evaluated[spec.name] = {k: _select_member(spec, k, evaluated, calibrated, config) for k in config.threshold_types}
    methods = {}
    for name, types in evaluated.items():
        spec = config.methods[name]
        chosen = choose_threshold_type(MethodResult(spec, types), config.selection)
        guaranteed = [r for r in types.values() if r.guaranteed]
        if spec.keep_first_se > 0 and len(guaranteed) > 1:  # the first guaranteed type, unless another clearly validates better
            chosen = guaranteed[_keep_first(guaranteed, calibrated, config, spec.keep_first_se)]
        methods[name] = MethodResult(spec, types, chosen)
    clock["done"] = time.perf_counter()
    seconds = {
        "fit_and_score": clock["scored"] - clock["start"],
        "calibrate": clock["calibrated"] - clock["scored"],
        "select_and_test": clock["done"] - clock["calibrated"],
        **{f"fit/{n}": v for n, v in scored.fit_seconds.items()},
        **{f"score/{n}": v for n, v in scored.score_seconds.items()},
    }
    task = TaskResult(rollouts.task, rollouts, split, config.deltas, scored, grids, methods, seconds,
                      selection_grids=selection_grids, calibration_parts=parts,
                      live=live_results(rollouts), cells=tuple(cell_counts(rollouts)), left_out=left_out)
    return dataclasses.replace(task, findings=task_findings(task, config))


def evaluate_rollouts(stores: str | Sequence[str], config: EvaluationConfig | dict | None = None) -> EvaluationResult:
    """Evaluate every configured method on the rollouts of ``stores`` (paths, globs, dirs; merged by task)."""
    if not isinstance(config, EvaluationConfig):
        config = EvaluationConfig.from_mapping(config)
    return evaluate_tasks(load_rollouts(stores, control_period_s=config.control_period_s, progress=config.progress), config)


def evaluate_tasks(tasks: dict[str, RolloutSet], config: EvaluationConfig) -> EvaluationResult:
    """Evaluate already loaded rollouts (one RolloutSet per task) with ``config``."""
    return EvaluationResult(config, {name: evaluate_task(ro, config) for name, ro in tasks.items()})
