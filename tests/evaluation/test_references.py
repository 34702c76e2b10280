"""The elapsed-time reference on constructed stores: it catches failures that are only long
episodes (timeouts) where an embedding score cannot, and misses short embedding-shifted failures
that the embedding score catches; report.md and metrics.json state the margin over it."""

from __future__ import annotations

import json
import math

import pytest

from benchmarks.synthetic_stores import SyntheticTask, write_synthetic_store
from evaluation_helpers import small_config
from fiper.evaluation import evaluate_rollouts, summary_table, write_outputs
from fiper.evaluation.findings import Row
from fiper.evaluation.render.text import mean

DELTAS = (0.05, 0.1, 0.15)
# knn with short windows only: a cumulative window would count decisions too and become a clock itself
METHODS = {"knn": {"scores": ["knn"], "windows": [1, 3]}, "elapsed": {"scores": ["elapsed"], "windows": [1]}}
SIZES = dict(n_success_id=160, n_success_ood=0, n_fail_ood=0)
# failures that are only long (no drift, no diffusion): the episode ran out of time
TIMEOUTS = SyntheticTask(name="timeouts", drift=0.0, diffuse=0.0, fail_decisions=(32, 40))
# failures shorter than any success, drifting off the embedding manifold from an early onset
SHORT_SHIFTS = SyntheticTask(name="short_shifts", drift=0.8, fail_decisions=(8, 12))


def _evaluate(tmp_path, task, **store):
    path = write_synthetic_store(tmp_path / f"{task.name}.zarr", task, seed=5, n_fail_id=40, **SIZES, **store).path
    config = small_config(methods=METHODS, baselines=[], references=["elapsed"], deploy_method="knn", plot_method=None,
                          threshold_types=["constant"], deltas=DELTAS, split={"fit": 0.25, "calibration": 0.35, "validation": 0.5})
    result = evaluate_rollouts(str(path), config)
    paths = write_outputs(result, tmp_path / task.name, plots=False)
    doc = json.loads(paths["metrics"].read_text())["tasks"][task.name]
    return result.tasks[task.name], doc, paths["report"].read_text(), summary_table(result)


def _test(task_result, method):
    return task_result.methods[method].result("constant").test


def _mean(values):
    return sum(values) / len(values)


def _check_margins(task, doc, report):
    """metrics.json and report.md state the deployed (knn) row's margin over elapsed, equal to the records."""
    knn, clock = _test(task, "knn"), _test(task, "elapsed")
    margin = doc["margin_over_references"]
    assert margin["reference"] == {"method": "elapsed", "threshold_type": "constant"}
    assert doc["headline"]["best_reference"] == margin["reference"] and doc["headline"]["references"] == [margin["reference"]]
    dep = margin["deployed"]
    assert (dep["method"], dep["threshold_type"]) == ("knn", "constant")
    for key in ("accuracy", "twa"):
        assert dep[key] == pytest.approx(_mean(knn[key]) - _mean(clock[key]), abs=1e-12)
    assert [r["method"] for r in margin["rows"]] == ["knn"]  # the reference is not compared with itself
    assert f"scores Acc {dep['accuracy']:+.3f}, TWA {dep['twa']:+.3f} over `elapsed` (constant)" in report
    head = report[report.index("### Deployed monitor against"):report.index("Full definitions:")]
    assert "| best reference | elapsed |" in head and f"| {dep['accuracy']:+.2f} | {dep['twa']:+.2f} |" in head
    assert task.findings.best_reference == Row("elapsed", "constant")
    return dep


def test_timeouts_are_caught_by_the_clock_and_not_by_the_embedding(tmp_path):
    task, doc, report, terminal = _evaluate(tmp_path, TIMEOUTS, failure_reasons=["timeout"])
    clock, knn = _test(task, "elapsed"), _test(task, "knn")
    n = int(clock["success_id_n"])
    assert n == 32 and task.split_sizes["test"]["fail_id"] == 20
    assert min(clock["tpr"]) == 1.0  # every timeout outlasts the calibration successes
    for delta, far in zip(DELTAS, clock["far_id"]):
        assert far <= delta + 3 * math.sqrt(delta * (1 - delta) / n)
    assert _mean(knn["tpr"]) < 0.5 and _mean(knn["accuracy"]) < 0.7  # the embedding sees nothing wrong
    dep = _check_margins(task, doc, report)
    assert (dep["accuracy"], dep["twa"]) == pytest.approx((-0.392708, -0.174760), abs=1e-6)  # pinned on this store and split
    assert "scores Acc -0.393, TWA -0.175 over `elapsed` (constant)" in report
    assert "best reference elapsed (constant): TWA 0.69, Acc 0.99; deployed knn over it: Acc -0.39, TWA -0.17" in terminal
    assert "it does not beat a detector that reads nothing of the policy on this split" in report


def test_short_embedding_shifted_failures_are_caught_by_the_embedding_and_not_by_the_clock(tmp_path):
    task, doc, report, terminal = _evaluate(tmp_path, SHORT_SHIFTS)
    clock, knn = _test(task, "elapsed"), _test(task, "knn")
    assert max(clock["tpr"]) == 0.0  # no failure lasts as long as a success
    assert _mean(knn["tpr"]) > 0.9 and _mean(knn["accuracy"]) > 0.85
    dep = _check_margins(task, doc, report)
    assert (dep["accuracy"], dep["twa"]) == pytest.approx((0.510417, 0.391214), abs=1e-6)  # pinned on this store and split
    assert "scores Acc +0.510, TWA +0.391 over `elapsed` (constant)" in report
    assert "best reference elapsed (constant): TWA 0.45, Acc 0.45; deployed knn over it: Acc +0.51, TWA +0.39" in terminal
    assert "what the monitor adds over a detector that reads nothing of the policy" in report


def test_a_test_split_with_few_failures_is_flagged_in_the_terminal_and_the_report(tmp_path):
    """Four failures in all leave two in test: every rate and margin moves by half or more per failure, and both
    outputs say so with the way out; the 20-failure test splits above carry no such warning."""
    path = write_synthetic_store(tmp_path / "thin.zarr", SHORT_SHIFTS, seed=5, n_fail_id=4, **SIZES).path
    config = small_config(methods=METHODS, baselines=[], references=["elapsed"], deploy_method="knn", plot_method=None,
                          threshold_types=["constant"], deltas=DELTAS, split={"fit": 0.25, "calibration": 0.35, "validation": 0.5})
    result = evaluate_rollouts(str(path), config)
    report = write_outputs(result, tmp_path / "thin", plots=False)["report"].read_text()
    line = ("task short_shifts's test split holds 2 failures and 32 successes, so TPR, Acc, TWA and the margins move by "
            "0.50 per failure and TNR by 0.03 per success")  # pinned on this store and split
    assert f"warning: {line}" in summary_table(result) and f"**Warning:** {line}" in report
    assert "launch.stress cells whose shifts make the policy fail" in report
    _, _, thick_report, thick_terminal = _evaluate(tmp_path, SHORT_SHIFTS)
    assert "warning:" not in thick_terminal and "**Warning:** task" not in thick_report


def test_a_test_split_without_successes_writes_its_undefined_rates_as_dashes(tmp_path):
    """Five in-distribution successes leave none in test: TNR, Acc, TWA and the margins are undefined, written '–' (not
    nan) in the terminal and the report, and the warning says so."""
    path = write_synthetic_store(tmp_path / "few.zarr", SHORT_SHIFTS, seed=5, n_fail_id=20, n_success_id=5,
                                 n_success_ood=0, n_fail_ood=0).path
    config = small_config(methods=METHODS, baselines=[], references=["elapsed"], deploy_method="knn", plot_method=None,
                          threshold_types=["constant"], deltas=(0.5,), split={"fit": 0.25, "calibration": 0.5, "validation": 0.5})
    result = evaluate_rollouts(str(path), config)
    terminal, report = summary_table(result), write_outputs(result, tmp_path / "few", plots=False)["report"].read_text()
    assert "best reference elapsed (constant): TWA –, Acc –; deployed knn over it: Acc –, TWA –" in terminal
    assert ("test split holds 10 failures and 0 successes, so TNR, Acc, TWA and the margins are undefined there (–)"
            in terminal)
    assert "undefined on this split, whose test part lacks successes or failures" in report
    assert "nan" not in terminal and "nan" not in report


def test_a_clock_with_nothing_to_read_is_named_in_the_terminal_and_the_report(tmp_path):
    """Every episode 20 decisions long (an env that never ends on success or failure): the clock scores chance and both
    outputs say why the best reference is another; variable lengths carry no such note."""
    fixed = SyntheticTask(name="fixed", drift=0.8, min_decisions=20, max_decisions=20)
    task_result, _, report, terminal = _evaluate(tmp_path, fixed)
    assert mean(_test(task_result, "elapsed")["accuracy"]) == 0.5
    line = ("every episode of task fixed lasts 20 decisions, so `elapsed` scores them all alike (balanced accuracy 0.5) and "
            "a margin over it is a margin over chance")
    assert f"note: {line}" in terminal and f"**Note:** {line}" in report
    _, _, varied_report, varied_terminal = _evaluate(tmp_path, SHORT_SHIFTS)
    assert "note:" not in varied_terminal and "**Note:**" not in varied_report
