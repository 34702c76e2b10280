"""Repeated evaluation over split seeds: repeat 0 is the plain run; the summary is mean ± sd over repeats."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from fiper.evaluation.paired import mean_over_tasks, paired_to_best_other, paired_to_references, select_against_members
from fiper.evaluation.render import repeats_markdown
from fiper.evaluation.repeats import evaluate_repeats, summarise_repeats
from benchmarks.synthetic_stores import write_synthetic_store
from launch.evaluate import run

CONF = Path(__file__).resolve().parents[2] / "launch" / "conf"
DROP = [f"~methods.{m}" for m in ("fiper", "fiper_joint", "fiper_or_joint", "fiper_clock_or_joint", "fiper_obs_or_joint", "fiper_rec_or_joint", "fiper_select", "rnd_oe", "stac", "rnd_a", "logpzo", "pca_kmeans", "knn", "obs_novelty")]  # reconstruction: no camera in the store


def _record(method, delta, acc, far=0.0, se=0.0, auroc=0.7, guaranteed=True):
    return {"task": "t", "method": method, "threshold_type": "constant", "guaranteed": guaranteed, "delta": delta,
            "accuracy": acc, "twa": acc - 0.1, "auroc": auroc, "tpr": 0.5, "tnr": 0.9, "far_id": far, "far_id_se": se}


def test_summary_means_over_delta_then_over_repeats_and_counts_far_excess():
    rep0 = [_record("a", 0.1, 0.6), _record("a", 0.2, 0.8, far=0.5, se=0.05), _record("a", "mean", 0.0)]
    rep1 = [_record("a", 0.1, 0.9, auroc=None), _record("a", 0.2, 0.9)]
    (row,) = summarise_repeats([rep0, rep1])
    assert row["repeats"] == 2 and row["n_deltas"] == 2 and row["far_over"] == 1  # 0.5 > 0.2 + 0.15
    assert row["accuracy_mean"] == pytest.approx((0.7 + 0.9) / 2)
    assert row["accuracy_sd"] == pytest.approx(np.std([0.7, 0.9], ddof=1))
    assert row["auroc_mean"] == pytest.approx(0.7)  # the undefined AUROC is left out, not counted as 0
    assert "**0.800 ± 0.141**" in repeats_markdown([row])  # the best guaranteed accuracy is bold
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        evaluate_repeats([], None, 0)


def test_launch_evaluate_repeats_writes_each_seed_and_the_summary(tmp_path):
    store = tmp_path / "r.zarr"
    write_synthetic_store(store, seed=0, n_success_id=60, n_success_ood=8, n_fail_id=12, n_fail_ood=10)

    def compose_run(out, *extra):
        with initialize_config_dir(config_dir=str(CONF), version_base=None):
            cfg = compose(config_name="evaluate", overrides=[f"rollouts={store}", f"out={out}", "deltas=[0.1,0.2]",
                                                              "plots=false", "progress=false", "plot_method=ace", *DROP, *extra])
        return run(cfg)

    compose_run(tmp_path / "once")
    compose_run(tmp_path / "three", "repeats=3")
    once = json.loads((tmp_path / "once" / "metrics.json").read_text())["records"]
    first = json.loads((tmp_path / "three" / "metrics.json").read_text())["records"]
    assert first == once  # repeat 0 is exactly the single run
    seeds = [first] + [json.loads((tmp_path / "three" / "repeats" / f"seed_{s}" / "metrics.json").read_text())["records"] for s in (1, 2)]
    summary = json.loads((tmp_path / "three" / "repeats.json").read_text())
    assert summary["seeds"] == [0, 1, 2]
    for row in summary["rows"]:
        per_seed = [np.mean([r["accuracy"] for r in recs if r["method"] == row["method"] and r["threshold_type"] == row["threshold_type"]
                             and not isinstance(r["delta"], str)]) for recs in seeds]
        assert row["repeats"] == 3 and row["accuracy_mean"] == pytest.approx(np.mean(per_seed))
        assert row["accuracy_sd"] == pytest.approx(np.std(per_seed, ddof=1))
    assert any(row["accuracy_sd"] > 0 for row in summary["rows"])  # other seeds, other splits
    assert "## synthetic: 3 split seeds" in (tmp_path / "three" / "repeats.md").read_text()
    assert {p["field"] for p in summary["paired"]} == {"accuracy", "twa"} and all(p["n"] == 3 for p in summary["paired"])
    assert summary["baselines"] == ["mahalanobis"]  # the dropped default baselines are left out
    vs = summary["paired_vs_baselines"]
    assert vs and {p["method"] for p in vs} == {"ace", "elapsed"} and all(p["reference"].startswith("mahalanobis (") for p in vs)
    md = (tmp_path / "three" / "repeats.md").read_text()
    assert "difference to the best baseline row" in md
    assert summary["references"] == ["elapsed"]  # the default reference left stays
    margins = summary["paired_vs_references"]
    assert {p["method"] for p in margins} == {"ace", "mahalanobis"} and all(p["reference"].startswith("elapsed (") for p in margins)
    assert {(p["method"], p["field"]) for p in summary["paired_vs_references_mean_over_tasks"]} >= {("ace", "accuracy"), ("ace", "twa")}
    assert "difference to the best reference row (what the monitor adds)" in md and "## mean over tasks: paired over splits" in md


def test_paired_difference_to_the_best_other_row_is_per_split():
    """a leads b on every split by 0.02-0.04: the paired SE (0.004) is far below either method's
    own split-to-split sd; the better but unguaranteed row is not a reference."""
    acc = {"a": [0.80, 0.84, 0.78, 0.81], "b": [0.78, 0.80, 0.75, 0.78], "tv": [0.95] * 4}
    reps = [[dict(_record(m, 0.1, acc[m][k], guaranteed=(m != "tv")), twa=acc[m][k] - 0.1) for m in acc] for k in range(4)]
    rows = summarise_repeats(reps)
    pairs = {p["method"]: p for p in paired_to_best_other(rows, "accuracy")}
    assert set(pairs) == {"a", "b"} and pairs["a"]["reference"] == "b (constant)" and pairs["b"]["reference"] == "a (constant)"
    assert pairs["a"]["diff_mean"] == pytest.approx(0.03) and pairs["b"]["diff_mean"] == pytest.approx(-0.03)
    assert pairs["a"]["diff_se"] == pytest.approx(np.std([0.02, 0.04, 0.03, 0.03], ddof=1) / 2)
    assert (pairs["a"]["ahead"], pairs["b"]["ahead"], pairs["a"]["n"]) == (4, 0, 4)
    assert pairs["a"]["diff_se"] < 0.25 * min(r["accuracy_sd"] for r in rows if r["method"] in "ab")
    assert "| a | constant | +0.030 ± 0.004 vs b (constant) | 4/4 |" in repeats_markdown(rows)
    with pytest.raises(ValueError, match="paired field 'auroc' unknown"):
        paired_to_best_other(rows, "auroc")


def test_paired_reference_is_another_method_not_the_rows_own_copy():
    """a's 'chosen' row copies its constant row: comparing the two would say 'tied with itself'."""
    acc = {"a": [0.80, 0.84, 0.78, 0.81], "b": [0.78, 0.80, 0.75, 0.78]}
    reps = [[dict(_record(m, 0.1, acc[m][k]), twa=acc[m][k] - 0.1) for m in acc]
            + [dict(_record("a", 0.1, acc["a"][k]), threshold_type="chosen", twa=acc["a"][k] - 0.1)] for k in range(4)]
    pairs = [p for p in paired_to_best_other(summarise_repeats(reps), "twa") if p["method"] == "a"]
    assert len(pairs) == 2 and {p["reference"] for p in pairs} == {"b (constant)"}
    assert all(p["diff_mean"] == pytest.approx(0.03) for p in pairs)
    only_a = [[r for r in rep if r["method"] == "a"] for rep in reps]
    assert paired_to_best_other(summarise_repeats(only_a), "twa") == []  # one method: nothing to compare with


def test_paired_against_the_baselines_skips_better_non_baselines():
    """c beats every row but is not a baseline: a and c are measured against b, the only baseline."""
    acc = {"a": [0.80, 0.84, 0.78, 0.81], "b": [0.78, 0.80, 0.75, 0.78], "c": [0.9] * 4}
    reps = [[dict(_record(m, 0.1, acc[m][k]), twa=acc[m][k] - 0.1) for m in acc] for k in range(4)]
    rows = summarise_repeats(reps)
    vs = {p["method"]: p for p in paired_to_best_other(rows, "accuracy", among={"b"})}
    assert vs["a"]["reference"] == vs["c"]["reference"] == "b (constant)" and vs["a"]["diff_mean"] == pytest.approx(0.03)
    assert "b" not in vs  # no other baseline to compare b with
    text = repeats_markdown(rows, ["b"])
    table = text[text.index("difference to the best baseline row"):]
    assert "| a | constant | +0.030 ± 0.004 vs b (constant) | 4/4 |" in table and "| b | constant |" not in table


def test_baseline_names_are_checked():
    from fiper.evaluation import EvaluationConfig

    with pytest.raises(ValueError, match=r"baselines \['mahalanobs'\] are not configured methods"):
        EvaluationConfig.from_mapping({"baselines": ["mahalanobs"]})
    kept = EvaluationConfig.from_mapping({"methods": {"ace": {"scores": ["ace"]}, "knn": {"scores": ["knn"]}}, "scores": {"ace": {}, "knn": {}}, "plot_method": None})
    assert kept.baselines == ("knn",)  # dropped default baselines are left out, not an error


def test_margin_over_the_best_reference_per_task_and_averaged_over_tasks():
    """Two tasks, three splits: 'mon' beats the clock by 0.10/0.20/0.30 on task t and by 0.0/0.1/0.2 on u;
    over tasks the per-split means are 0.05, 0.15, 0.25 (mean 0.15, SE 0.1/sqrt(3)); 'clock2' is the
    better reference on u only."""
    acc = {"t": {"mon": [0.9, 0.9, 0.9], "clock": [0.8, 0.7, 0.6], "clock2": [0.5, 0.5, 0.5]},
           "u": {"mon": [0.8, 0.8, 0.8], "clock": [0.5, 0.5, 0.5], "clock2": [0.8, 0.7, 0.6]}}
    reps = [[dict(_record(m, 0.1, acc[t][m][k]), task=t, twa=acc[t][m][k]) for t in acc for m in acc[t]] for k in range(3)]
    rows = summarise_repeats(reps)
    per_task = {p["task"]: p for p in paired_to_references(rows, "accuracy", ["clock", "clock2"])}
    assert set(per_task) == {"t", "u"} and all(p["method"] == "mon" for p in per_task.values())  # references are not compared
    assert per_task["t"]["reference"] == "clock (constant)" and per_task["u"]["reference"] == "clock2 (constant)"
    assert per_task["t"]["diff_mean"] == pytest.approx(0.2) and per_task["u"]["diff_mean"] == pytest.approx(0.1)
    (avg,) = mean_over_tasks(list(per_task.values()))
    assert avg["task"] == "mean over tasks" and avg["tasks"] == ["t", "u"] and (avg["ahead"], avg["n"]) == (3, 3)
    assert avg["diff_mean"] == pytest.approx(0.15) and avg["diff_se"] == pytest.approx(0.1 / np.sqrt(3))
    md = repeats_markdown(rows, references=["clock", "clock2"])
    assert "| mon | constant | +0.150 ± 0.058 vs the best per task | 3/3 |" in md
    assert paired_to_references(rows, "accuracy", []) == []


def test_margin_over_the_references_reads_each_methods_deployable_row_against_one_reference():
    """report.md's margin over split seeds: 'mon' deploys its chosen row (0.70), not its better band row
    (0.90); the best reference is the one with the best mean of Acc and TWA ('clock', 0.60 / 0.60), used for
    both fields although 'pix' has the better TWA (0.65)."""
    def rec(method, kind, acc, twa, k):
        return dict(_record(method, 0.1, acc + 0.01 * k), threshold_type=kind, twa=twa + 0.01 * k)

    reps = [[rec("mon", "constant", 0.70, 0.70, k), rec("mon", "band", 0.90, 0.90, k), rec("mon", "chosen", 0.70, 0.70, k),
             rec("clock", "constant", 0.60, 0.60, k), rec("clock", "chosen", 0.60, 0.60, k),
             rec("pix", "constant", 0.50, 0.65, k), rec("pix", "chosen", 0.50, 0.65, k)] for k in range(3)]
    rows = summarise_repeats(reps)
    acc, twa = (paired_to_references(rows, f, ["clock", "pix"]) for f in ("accuracy", "twa"))
    assert [(p["method"], p["threshold_type"], p["reference"]) for p in acc + twa] == [("mon", "chosen", "clock (chosen)")] * 2
    assert acc[0]["diff_mean"] == pytest.approx(0.10) and twa[0]["diff_mean"] == pytest.approx(0.10)
    (by_twa,) = paired_to_references(rows, "twa", ["clock", "pix"], criterion="twa")  # the criterion picks the reference
    assert by_twa["reference"] == "pix (chosen)" and by_twa["diff_mean"] == pytest.approx(0.05)
    assert "vs clock (chosen)" in repeats_markdown(rows, references=["clock", "pix"])


def test_a_select_is_compared_with_the_member_best_in_hindsight_and_each_splits_best():
    """Four splits; member 'a' scores 0.80 on each, 'b' 0.60 / 0.96 / 0.70 / 0.86 (mean 0.78), and the select
    took a, b, b, a: 0.015 above 'a' on average (one split ahead, one behind), 0.04 below each split's best
    member. A member the run did not evaluate is left out; AUROC is kept per split for its criterion."""
    values = {"a": [0.80, 0.80, 0.80, 0.80], "b": [0.60, 0.96, 0.70, 0.86], "sel": [0.80, 0.96, 0.70, 0.80]}
    reps = [[dict(_record(m, 0.1, v[k]), threshold_type="chosen", twa=v[k], auroc=v[k]) for m, v in values.items()] for k in range(4)]
    rows = summarise_repeats(reps)
    (got,) = select_against_members(rows, {"sel": ["a", "b", "gone"]})
    assert got["best_member"] == "a" and got["members"] == pytest.approx({"a": 0.80, "b": 0.78})
    assert got["select"] == pytest.approx(0.815) and got["vs_best_mean"] == pytest.approx(0.015) and (got["ahead"], got["behind"]) == (1, 1)
    assert got["vs_split_best_mean"] == pytest.approx(-0.04) and got["vs_split_best_se"] == pytest.approx(np.std([0, 0, 0.1, 0.06], ddof=1) / 2)
    (by_auroc,) = select_against_members(rows, {"sel": ["a", "b"]}, criterion="auroc")
    assert by_auroc["best_member"] == "a" and by_auroc["select"] == pytest.approx(0.815)
    md = repeats_markdown(rows, selects={"sel": ["a", "b"]})
    assert "| sel | 0.815 | a (0.800) | +0.015 ± 0.054 | 1 / 1 | -0.040 ± 0.024 |" in md
    assert select_against_members(rows, {"sel": ["gone"]}) == []


def test_the_reference_table_names_its_criterion_once():
    reps = [[_record("mon", 0.1, 0.9), _record("clock", 0.1, acc)] for acc in (0.8, 0.7)]
    md = repeats_markdown(summarise_repeats(reps), references=["clock"])
    assert "mean mean" not in md
    assert "best reference (clock; highest mean of Acc and TWA, averaged over the split seeds)" in md
