"""How report.md and the terminal write a margin over the best reference: no sign on a value that rounds to
zero, a verdict that does not claim an advantage held on one metric only, the reference's chosen type named,
and a note when the deployed monitor reads the reference's own score."""

from __future__ import annotations

import pytest

from benchmarks.synthetic_stores import SyntheticTask, write_synthetic_store
from evaluation_helpers import small_config
from fiper.evaluation import evaluate_rollouts, summary_table, write_outputs
from fiper.evaluation.findings import Margin, Row
from fiper.evaluation.render.report_md import margin_text, margin_verdict
from fiper.evaluation.render.text import signed


def test_a_margin_that_rounds_to_zero_carries_no_sign():
    assert signed(-0.00018, 3) == "0.000" and signed(0.0046) == "0.00" and signed(-0.004) == "0.00"
    assert signed(0.0046, 3) == "+0.005" and signed(-0.39) == "-0.39" and signed(float("nan")) == "–"


def test_the_verdict_claims_an_advantage_only_when_ahead_on_both_metrics():
    assert margin_verdict(0.05, 0.02) == "what the monitor adds over a detector that reads nothing of the policy"
    assert margin_verdict(-0.00018, 0.0046).startswith("ahead on TWA only, level or behind on Acc: no clear margin")
    assert margin_verdict(0.03, -0.01).startswith("ahead on Acc only")
    assert margin_verdict(0.0004, -0.2).startswith("it does not beat")  # +0.000 is level, not ahead
    assert margin_verdict(float("nan"), 0.1).startswith("undefined on this split")


def test_a_chosen_reference_row_is_named_with_the_type_it_chose():
    m = Margin(Row("fiper_select", "chosen"), Row("obs_novelty", "chosen"), -0.00018, 0.0046)
    assert margin_text(m, "constant") == "Acc 0.000, TWA +0.005 over `obs_novelty` (chosen on validation: constant)"
    plain = Margin(Row("knn", "constant"), Row("elapsed", "constant"), 0.5, 0.4)
    assert margin_text(plain, "constant") == "Acc +0.500, TWA +0.400 over `elapsed` (constant)"


@pytest.fixture(scope="module")
def timeouts(tmp_path_factory):
    """Failures that are timeouts only; deployed: knn or'd with the clock (the best reference's own score)."""
    tmp_path = tmp_path_factory.mktemp("timeouts")
    task = SyntheticTask(name="timeouts", drift=0.0, diffuse=0.0, fail_decisions=(32, 40))
    path = write_synthetic_store(tmp_path / "t.zarr", task, seed=5, n_fail_id=40, n_success_id=160, n_success_ood=0,
                                 n_fail_ood=0, failure_reasons=["timeout"]).path
    methods = {"knn_or_clock": {"scores": ["knn", "elapsed"], "rule": "or", "joint": True, "windows": {"knn": [1], "elapsed": [1]}},
               "knn": {"scores": ["knn"], "windows": [1]}, "elapsed": {"scores": ["elapsed"], "windows": [1]}}
    config = small_config(methods=methods, baselines=["knn"], references=["elapsed"], deploy_method="knn_or_clock",
                          plot_method=None, threshold_types=["constant"], deltas=(0.05, 0.1, 0.15),
                          split={"fit": 0.25, "calibration": 0.35, "validation": 0.5})
    result = evaluate_rollouts(str(path), config)
    report = write_outputs(result, tmp_path / "out", plots=False)["report"].read_text()
    return result, report, summary_table(result)


def test_a_deployed_monitor_that_reads_the_references_score_says_so(timeouts):
    _, report, terminal = timeouts
    line = report[report.index("**Margin over the best reference**"):].split("\n")[0]
    assert "The deployed `knn_or_clock` reads the reference's own score (elapsed), or'd with its others" in line
    assert "`repeats=5` pairs every method's margin over split seeds, mean ± SE (repeats.md)" in line
    assert "-0.00" not in terminal and "-0.000" not in line


def test_the_terminal_names_the_deployed_row_and_the_best_baseline(timeouts):
    result, _, terminal = timeouts
    dep = result.tasks["timeouts"].methods["knn_or_clock"].result("constant").test
    assert (f"deployed knn_or_clock (constant; every choice made on validation): TWA {sum(dep['twa']) / 3:.2f}, "
            f"Acc {sum(dep['accuracy']) / 3:.2f}, FAR-ID {sum(dep['far_id']) / 3:.2f}") in terminal
    assert result.tasks["timeouts"].findings.best_baseline.method == "knn"
    assert "best baseline knn (constant; its type chosen on validation, the baseline picked on test): TWA" in terminal


def test_the_glossary_says_when_auroc_moves_with_delta_and_which_se_is_which():
    from fiper.evaluation.render.text import glossary

    text = "\n".join(glossary())
    assert "threshold-free" not in text
    assert "the same at every δ only for one score under a constant threshold" in text
    assert "the FAR-ID checks below use √(δ(1 − δ)/n) instead" in text
    assert "fraction of physical failures (not timeouts) with a known onset" in text


def test_the_deployed_far_note_counts_the_checks_above_delta_and_above_two_se_apart():
    from types import SimpleNamespace

    from fiper.evaluation.findings import far_check
    from fiper.evaluation.render.report_md import _deployed_notes

    checks = tuple(c for c in (far_check(Row("d", "constant"), "constant", d, 3, 18) for d in (0.05, 0.08, 0.1)) if c)
    res = SimpleNamespace(threshold_type="constant", selected=None)
    found = SimpleNamespace(deployed=Row("d", "constant"), far_checks=checks)
    task = SimpleNamespace(findings=found, deltas=(0.05, 0.08, 0.1), methods={"d": SimpleNamespace(result=lambda label: res)})
    note = _deployed_notes(task)[0]
    assert "3/18 = 0.17 at δ = 0.05: above δ + 2 SE = 0.15" in note  # the worst of the three
    assert "(FAR-ID above δ at 3 of 3 δ, above δ + 2 SE at 1 of them)" in note


def test_the_reference_role_says_what_each_configured_reference_does(timeouts):
    _, report, _ = timeouts
    bullet = next(line for line in report.splitlines() if line.startswith("- **reference**"))
    assert "(`elapsed`: alarm once the episode outlasts (1 − δ) of the calibration successes)" in bullet
    assert "obs_novelty" not in bullet  # not configured here: not described
