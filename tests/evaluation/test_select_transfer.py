"""FIPER's indicators OR the clock under one joint height, and a select that keeps its first member
unless another beats it on validation by more than the validation set's resampling noise."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.synthetic_stores import SyntheticTask, write_synthetic_store
from evaluation_helpers import ONE_RUN, small_config
from fiper.evaluation import evaluate_rollouts
from fiper.evaluation.config import EvaluationConfig, MethodSpec
from fiper.evaluation.grid import CandidateAlarms
from fiper.evaluation.selection import choose_member, criterion_values, stack_candidates

DELTAS = (0.05, 0.1, 0.15)
# knn with short windows only: a cumulative window would count decisions and become a clock itself
METHODS = {"knn": {"scores": ["knn"], "windows": [1, 3]}, "elapsed": {"scores": ["elapsed"], "windows": [1]},
           "knn_clock": {"scores": ["knn", "elapsed"], "rule": "or", "joint": True, "windows": {"knn": [1, 3], "elapsed": [1]}}}
SIZES = dict(n_success_id=160, n_success_ood=0, n_fail_ood=0)
TIMEOUTS = SyntheticTask(name="timeouts", drift=0.0, diffuse=0.0, fail_decisions=(32, 40))  # failures that are only long
SHORT_SHIFTS = SyntheticTask(name="short_shifts", drift=0.8, fail_decisions=(8, 12))  # short, off the embedding manifold


def _evaluate(tmp_path, task, kind, **store):
    path = write_synthetic_store(tmp_path / f"{task.name}.zarr", task, seed=5, n_fail_id=40, **SIZES, **store).path
    config = small_config(methods=METHODS, baselines=[], references=["elapsed"], deploy_method="knn_clock", plot_method=None,
                          threshold_types=[kind], deltas=DELTAS, split={"fit": 0.25, "calibration": 0.35, "validation": 0.5})
    return evaluate_rollouts(str(path), config).tasks[task.name]


@pytest.mark.parametrize("kind", ["constant", "band"])
def test_the_clock_in_a_joint_or_catches_timeouts_and_the_embedding_catches_short_shifts_within_delta(tmp_path, kind):
    """Where only the clock detects (timeouts), the combined alarm catches what the clock does; where only
    the embedding detects (short shifted failures), what the embedding does; FAR-ID <= delta + 3 SE throughout."""
    for task, store, alone, blind in ((TIMEOUTS, {"failure_reasons": ["timeout"]}, "elapsed", "knn"), (SHORT_SHIFTS, {}, "knn", "elapsed")):
        result = _evaluate(tmp_path, task, kind, **store)
        res = result.methods["knn_clock"].result(kind)
        assert [c[1] for c in res.candidates] == [0, 0] and len(res.candidates) == 2  # the clock at window 1 only
        combined, single, other = res.test, result.methods[alone].result(kind).test, result.methods[blind].result(kind).test
        assert np.mean(other["tpr"]) < 0.5  # the other indicator alone misses these failures
        assert min(single["tpr"]) >= 0.9 and min(combined["tpr"]) >= 0.9
        assert np.mean(combined["accuracy"]) >= np.mean(single["accuracy"]) - 0.05
        n = int(combined["success_id_n"])
        for delta, far in zip(DELTAS, combined["far_id"]):
            assert far <= delta + 3 * math.sqrt(delta * (1 - delta) / n)


def _alarms(flags: list[np.ndarray]) -> CandidateAlarms:
    """One candidate per member: first alarm at decision 2 where flagged, else none (one delta)."""
    first = np.stack([np.where(f, 2, -1) for f in flags])[:, None, :]
    return CandidateAlarms([(0,)] * len(flags), first.astype(np.int64), first.astype(np.float64))


def test_choose_member_keeps_the_first_unless_another_wins_by_more_than_its_resampling_noise():
    failed = np.arange(40) < 20  # 20 failures, 20 successes
    lengths, top = np.full(40, 10), 10
    first = failed & (np.arange(40) < 10)  # catches 10 of 20 failures, no false alarm
    narrow = failed & (np.arange(40) < 12)  # 2 more failures ...
    narrow = narrow | (np.arange(40) == 39)  # ... and one more false alarm: +0.025 accuracy
    clear = failed.copy()  # every failure, no false alarm: +0.25 accuracy
    members = _alarms([first, narrow])
    plain = choose_member(members, failed, lengths, top, "accuracy", 0.0)
    assert plain.index == plain.best == 1  # the plain rule takes the validation winner
    kept = choose_member(members, failed, lengths, top, "accuracy", 1.0, seed=0)
    assert kept.index == 0 and kept.best == 1
    assert kept.advantage[1] == pytest.approx(0.025) and kept.se[1] > kept.advantage[1]  # within noise
    assert 0.03 < kept.se[1] < 0.07  # sd of the paired difference of 3 discordant episodes over 20 + 20
    switched = choose_member(_alarms([first, narrow, clear]), failed, lengths, top, "accuracy", 1.0, seed=0)
    assert switched.index == 2 and switched.advantage[2] == pytest.approx(0.25) and switched.advantage[2] > 3 * switched.se[2]
    # the advantage is measured against the member's own validation values (criterion_values)
    values = criterion_values(_alarms([first, narrow, clear]), failed, lengths, top)["accuracy"]
    assert switched.advantage == pytest.approx(values - values[0])


def test_engine_select_with_keep_first_se_is_choose_member_on_the_members_validation_alarms(tmp_path):
    path = write_synthetic_store(tmp_path / "a.zarr", seed=3, **ONE_RUN).path
    methods = {"ace": {"scores": ["ace"]}, "knn": {"scores": ["knn"]}, "mahalanobis": {"scores": ["mahalanobis"]},
               "keep": {"select": ["ace", "knn", "mahalanobis"], "keep_first_se": 1.0}}
    result = evaluate_rollouts(str(path), small_config(methods=methods, plot_method=None, baselines=[], references=[],
                                                       deploy_method="keep"))
    task = result.tasks["synthetic"]
    split, lengths = task.split, task.rollouts.lengths
    top = int(lengths[np.concatenate([split.fit, split.calibration, split.validation])].max())
    for kind, res in task.methods["keep"].types.items():
        members = [task.methods[m].types[kind] for m in methods["keep"]["select"]]
        for m in members:  # the stored validation alarms are the chosen window's: same criterion values
            v = criterion_values(m.validation_alarms, task.rollouts.failed[split.validation], lengths[split.validation], top)
            assert v["accuracy_twa"][0] == pytest.approx(m.validated("accuracy_twa"))
        choice = choose_member(stack_candidates([m.validation_alarms for m in members]), task.rollouts.failed[split.validation],
                               lengths[split.validation], top, result.config.selection, 1.0, seed=result.config.seed)
        assert res.selected == methods["keep"]["select"][choice.index]
        if choice.index != 0:
            assert choice.advantage[choice.index] > choice.se[choice.index] > 0
    guaranteed = [r for r in task.methods["keep"].types.values() if r.guaranteed]  # its type: the first unless clearly beaten
    choice = choose_member(stack_candidates([r.validation_alarms for r in guaranteed]), task.rollouts.failed[split.validation],
                           lengths[split.validation], top, result.config.selection, 1.0, seed=result.config.seed)
    assert task.methods["keep"].chosen.threshold_type == guaranteed[choice.index].threshold_type
    assert task.methods["keep"].chosen.selected == task.methods["keep"].types[guaranteed[choice.index].threshold_type].selected


def test_per_score_windows_round_trip_and_name_the_fix():
    spec = MethodSpec.of("m", METHODS["knn_clock"])
    assert spec.score_windows == (("knn", (1, 3)), ("elapsed", (1,))) and spec.windows is None
    assert MethodSpec.of("m", spec.as_dict()) == spec
    config = EvaluationConfig.from_mapping({"methods": {"m": {"scores": ["knn", "elapsed"], "rule": "or", "windows": {"elapsed": [1]}}},
                                            "plot_method": None, "references": [], "baselines": []})
    assert config.method_windows(config.methods["m"], "elapsed") == (1,)
    assert config.method_windows(config.methods["m"], "knn") == config.windows
    with pytest.raises(ValueError, match=r"windows per score must name some of its scores \['knn', 'elapsed'\].*'ace'"):
        MethodSpec.of("m", {"scores": ["knn", "elapsed"], "windows": {"ace": [1]}})
    with pytest.raises(ValueError, match="windows of 'elapsed'"):
        MethodSpec.of("m", {"scores": ["knn", "elapsed"], "windows": {"elapsed": [0]}})


def test_where_only_the_clock_detects_the_keep_first_select_leaves_the_embedding_for_the_clock_or(tmp_path):
    """Timeouts only: the first member (the embedding alone) misses them; the select takes the clock OR, whose
    validation advantage is far beyond its noise, and comes within 0.03 of the clock on test with FAR-ID <= delta + 3 SE."""
    methods = {**METHODS, "select": {"select": ["knn", "knn_clock"], "keep_first_se": 1.0}}
    path = write_synthetic_store(tmp_path / "t.zarr", TIMEOUTS, seed=5, n_fail_id=40, failure_reasons=["timeout"], **SIZES).path
    config = small_config(methods=methods, baselines=[], references=["elapsed"], deploy_method="select", plot_method=None,
                          threshold_types=["constant", "band"], deltas=DELTAS,
                          split={"fit": 0.25, "calibration": 0.35, "validation": 0.5})
    task = evaluate_rollouts(str(path), config).tasks[TIMEOUTS.name]
    chosen = task.methods["select"].chosen
    assert chosen.selected == "knn_clock"
    clock = task.methods["elapsed"].result(chosen.threshold_type).test
    # within 0.03 of the clock alone (0.969 against 0.990 here): the OR spends part of delta on the embedding's score
    assert np.mean(chosen.test["accuracy"]) >= np.mean(clock["accuracy"]) - 0.03
    assert np.mean(chosen.test["accuracy"]) > np.mean(task.methods["knn"].result(chosen.threshold_type).test["accuracy"]) + 0.2
    n = int(chosen.test["success_id_n"])
    for delta, far in zip(DELTAS, chosen.test["far_id"]):
        assert far <= delta + 3 * math.sqrt(delta * (1 - delta) / n)
