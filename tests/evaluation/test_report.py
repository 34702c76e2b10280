"""report.md leads with the deployed row against the best baseline, defines its columns, explains the
choice and flags FAR-ID above δ + 2 SE; the engine's results are immutable and rendering deploys nothing."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from benchmarks.synthetic_stores import SyntheticTask, synthetic_episode, write_synthetic_store
from evaluation_helpers import ONE_RUN, small_config
from fiper.evaluation import evaluate_rollouts, load_rollouts, split_episodes, write_monitor_files, write_outputs
from fiper.evaluation.findings import Row, far_check
from fiper.evaluation.render.plots import method_styles
from fiper.evaluation.render.tables_md import far_text

# Method names of the user's choosing: the report must take every name from the configuration.
METHODS = {"mine": {"select": ["one", "two"]}, "one": {"scores": ["ace"]}, "two": {"scores": ["rnd_oe", "ace"], "rule": "and"},
           "base_a": {"scores": ["knn"]}, "base_b": {"scores": ["mahalanobis"]}}
GLOSSED = ("TPR", "TNR", "Acc", "TWA", "DT", "AUROC", "FAR-ID", "δ")


def _section(report: str, title: str) -> str:
    start = report.index(title)
    end = report.find("\n### ", start + len(title))
    return report[start:] if end < 0 else report[start:end]


def test_far_check_bound_is_delta_plus_two_binomial_se():
    near = far_check(Row("m", "band"), "band", 0.05, 2, 18)  # 2/18 = 0.11: above δ, but δ + 2 SE = 0.153
    assert near.bound == pytest.approx(0.05 + 2 * math.sqrt(0.05 * 0.95 / 18)) and not near.above_bound
    assert far_text(near) == "2/18 = 0.11 at δ = 0.05: above δ, within δ + 2 SE = 0.15"
    far = far_check(Row("m", "band"), "band", 0.05, 4, 18)  # 0.22 > 0.153
    assert far.above_bound and far_text(far).endswith(": above δ + 2 SE = 0.15")
    assert far_check(Row("m", "band"), "band", 0.05, 0, 18) is None and far_check(Row("m", "band"), "band", 0.05, 1, 0) is None


def _evaluate_with_id_test_successes_like_failures(root, n_bad: int):
    """A store whose first ``n_bad`` in-distribution test successes look like failures (labels unchanged), evaluated."""
    clean = write_synthetic_store(root / "clean.zarr", seed=4, overwrite=True, **ONE_RUN)
    ro = load_rollouts(str(clean.path))["synthetic"]
    split = split_episodes(ro.success, ro.ood, seed=0)  # labels alone decide the split
    id_success_test = [int(e) for e in split.test if ro.success[e] and not ro.ood[e]]
    rng = np.random.default_rng(0)
    bad = {e: synthetic_episode(SyntheticTask(), rng, success=False, ood=False, n_decisions=int(ro.lengths[e]))
           for e in id_success_test[:n_bad]}
    replace = {e: {k: ep[k] for k in ("embedding", "samples", "env_step")} for e, ep in bad.items()}
    write_synthetic_store(root / "noisy.zarr", seed=4, replace=replace, overwrite=True, **ONE_RUN)
    config = small_config(methods=METHODS, baselines=["base_a", "base_b"], deploy_method="mine", plot_method="two",
                          threshold_types=["constant", "band"])
    result = evaluate_rollouts(str(root / "noisy.zarr"), config)
    out = root / "out"
    return result, out, write_outputs(result, out, plots=False), len(id_success_test)


@pytest.fixture(scope="module")
def noisy(tmp_path_factory):
    """Four of the five in-distribution test successes look like failures: FAR-ID far above δ + 2 SE."""
    return _evaluate_with_id_test_successes_like_failures(tmp_path_factory.mktemp("noisy"), 4)


def test_far_id_above_two_se_is_flagged_in_the_report_and_metrics(noisy):
    result, out, paths, n = noisy
    task = result.tasks["synthetic"]
    flagged = task.findings.far_above_bound()
    assert flagged, "four of the in-distribution test successes look like failures: some row must exceed δ + 2 SE"
    for c in flagged:
        res = task.methods[c.row.method].types[c.row.label]
        i = task.deltas.index(c.delta)
        assert c.n == n and c.flagged == int(res.test["success_id_flagged"][i]) and c.far == pytest.approx(res.test["far_id"][i])
        assert c.far > c.delta + 2 * math.sqrt(c.delta * (1 - c.delta) / n)
    # every guaranteed (row, δ) beyond the bound is listed, and nothing else
    records = [r for r in result.records() if r["guaranteed"] and r["threshold_type"] != "chosen" and r["delta"] != "mean"]
    beyond = {(r["method"], r["threshold_type"], r["delta"]) for r in records
              if r["success_id_flagged"] / r["success_id_n"] > r["delta"] + 2 * math.sqrt(r["delta"] * (1 - r["delta"]) / r["success_id_n"])}
    assert {(c.row.method, c.row.label, c.delta) for c in flagged} == beyond
    doc = json.loads(paths["metrics"].read_text())["tasks"]["synthetic"]
    assert {(e["method"], e["threshold_type"], e["delta"]) for e in doc["far_id_above_bound"]} == beyond
    section = _section(paths["report"].read_text(), "### FAR-ID above δ + 2 SE")
    for method, label in {(m, k) for m, k, _ in beyond}:
        assert f"- **`{method}` {label}** at " in section
    assert f"With {n} in-distribution test successes" in section and "repeats=5" in section


@pytest.mark.parametrize("n_bad, remark", [
    (0, None),  # the deployed monitor raises no false alarm on this split
    (1, "Note: the deployed monitor's FAR-ID was 1/5 = 0.20 at δ = 0.1: above δ, within δ + 2 SE = 0.37"),
    (4, "**FAR-ID above δ + 2 SE**: the deployed monitor's FAR-ID was 4/5 = 0.80 at δ = 0.1: above δ + 2 SE = 0.37"),
])
def test_the_deployed_rows_far_id_is_remarked_under_the_headline(tmp_path, n_bad, remark):
    result, out, paths, n = _evaluate_with_id_test_successes_like_failures(tmp_path, n_bad)
    report = paths["report"].read_text()
    assert n == 5 and result.tasks["synthetic"].findings.deployed == Row("mine", "chosen")
    if remark is None:
        assert "the deployed monitor's FAR-ID" not in report
        return
    assert remark in report
    line = next(x for x in report.splitlines() if remark in x)
    assert ("consistent with δ" in line) == (n_bad == 1) and ("repeats=5" in line) == (n_bad == 4)
    if n_bad == 4:  # the FAR-ID section says what an excess means; the remark points there instead of saying it twice
        assert report.count("the guarantee bounds the expectation over calibration draws") == 1
    # right under the headline table and its glossary
    assert report.index("### Deployed monitor against") < report.index("Full definitions:") < report.index(remark) < report.index("### FAR-ID above")


def test_report_leads_with_the_deployed_row_against_the_best_baseline(noisy):
    result, out, paths, _ = noisy
    report = paths["report"].read_text()
    assert "fiper" not in report.replace("fiper.evaluation", "")  # method names come from the configuration
    task_start = report.index("## Task `synthetic`")
    assert report.index("### Deployed monitor against the best baseline", task_start) < report.index("### ", task_start + 5) + 1
    head = _section(report, "### Deployed monitor against the best baseline")
    records = {(r["method"], r["threshold_type"]): r for r in result.records() if r["delta"] == "mean"}
    chosen = {m: records[(m, "chosen")] for m in METHODS}
    crit = {m: 0.5 * (r["accuracy"] + r["twa"]) for m, r in chosen.items()}  # the default criterion, on test
    best = max(("base_a", "base_b"), key=lambda m: crit[m])
    table_rows = [line for line in head.splitlines() if line.startswith("| ") and not line.startswith("| role")]
    assert table_rows[0].startswith(f"| **deployed** | **mine** = {chosen['mine']['selected']} | {chosen['mine']['chosen_type']} |")
    assert table_rows[1].startswith(f"| best baseline | {best} | {chosen[best]['chosen_type']} |")
    assert [r.split(" | ")[:2] for r in table_rows[2:]] == [["| other", "one"], ["| other", "two"]]  # neither baseline nor reference
    assert "Acc − ref" not in head and "Margin over the best reference" not in head  # no reference configured here
    twa = chosen["mine"]["twa"]
    assert f" | {twa:.2f} | {chosen['mine']['accuracy']:.2f} |" in table_rows[0]
    for term in GLOSSED:  # a glossary under the first table defines every column
        assert f"- **{term}**: " in head
    assert "Acc**: balanced accuracy" in head


def test_full_grid_lists_each_type_once_and_marks_the_chosen_one(noisy):
    result, out, paths, _ = noisy
    grid = _section(paths["report"].read_text(), "### All methods × threshold types")
    for name, method in result.tasks["synthetic"].methods.items():
        rows = [line for line in grid.splitlines() if line.startswith(f"| {name} |")]
        assert [r.split(" | ")[1] for r in rows] == ["constant", "band"]
        marked = [r.split(" | ")[1] for r in rows if r.split(" | ")[3] == "✓"]
        assert marked == [method.chosen.threshold_type]


def test_why_names_the_test_winner_and_its_validation_value(noisy):
    result, out, paths, _ = noisy
    task = result.tasks["synthetic"]
    report = paths["report"].read_text()
    assert "Why this configuration: the deploy step takes `mine`'s row chosen on validation" in report
    for w in (w for w in task.findings.winners if w.scope == "all"):
        assert f"- Best test {dict(twa='TWA', accuracy='Acc')[w.metric]}" in report


def test_rendering_deploys_nothing_and_results_are_immutable(noisy, tmp_path):
    result, out, paths, _ = noisy
    assert not list(out.glob("monitor_*.yaml")) and not list(out.glob("*.png"))  # write_outputs renders; deploying is its own step
    written = write_monitor_files(result, tmp_path)
    assert list(written) == ["synthetic"] and written["synthetic"].name == "monitor_synthetic.yaml"
    task = result.tasks["synthetic"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        task.methods = {}
    with pytest.raises(dataclasses.FrozenInstanceError):
        task.methods["one"].chosen = None


def test_every_method_gets_its_own_line_style_and_the_deployed_one_stands_out():
    names = [f"m{i}" for i in range(14)]
    styles = method_styles(names, "m3", baselines={f"m{i}" for i in range(6, 14)})
    colours = [styles[n]["color"] for n in names]
    assert len(set(map(tuple, (np.atleast_1d(c) for c in colours)))) == len(names)  # 14 distinct colours
    assert styles["m3"]["color"] == "black" and styles["m3"]["lw"] > max(styles[n]["lw"] for n in names if n != "m3")
    assert all(styles[f"m{i}"]["ls"] != "-" and styles[f"m{i}"]["alpha"] < 1 for i in range(6, 14))  # baselines muted, dashed
    assert styles["m3"]["zorder"] > max(styles[n]["zorder"] for n in names if n != "m3")
    clock = method_styles(names, "m3", baselines={"m6"}, references={"m0"})
    assert (clock["m0"]["color"], clock["m0"]["ls"]) == ("dimgrey", ":")  # the reference: dotted grey, not a palette colour
    assert clock["m0"]["color"] not in [clock[n]["color"] for n in names if n != "m0"]


def test_without_a_guaranteed_type_nothing_is_deployed_and_the_report_says_so(tmp_path):
    path = write_synthetic_store(tmp_path / "a.zarr", seed=3, **ONE_RUN).path
    config = small_config(methods={"a": {"scores": ["knn"]}, "b": {"scores": ["mahalanobis"]}}, baselines=["b"],
                          deploy_method="a", plot_method=None, threshold_types=["time_varying"])
    result = evaluate_rollouts(str(path), config)
    found = result.tasks["synthetic"].findings
    assert (found.deploy_method, found.deployed, found.best_baseline, found.references, found.far_checks) == ("a", None, None, (), ())
    report = write_outputs(result, tmp_path / "out", plots=False)["report"].read_text()
    assert "No method has a guaranteed threshold type in this run." in report
    assert "`a` has no guaranteed threshold type in this run: no monitor file is written." in report
    assert "among guaranteed threshold types" not in report and "Why this configuration" not in report
    assert write_monitor_files(result, tmp_path / "deploy") == {}


def test_report_and_metrics_show_why_the_select_left_its_first_member(tmp_path):
    """Timeouts only (the embedding alone misses them): the select takes the clock OR, and report.md and
    metrics.json say so with its validation advantage over the first member, beyond 1 SE of it."""
    from fiper.evaluation.render import metrics_document, report_markdown

    timeouts = SyntheticTask(name="timeouts", drift=0.0, diffuse=0.0, fail_decisions=(32, 40))
    methods = {"knn": {"scores": ["knn"], "windows": [1, 3]}, "elapsed": {"scores": ["elapsed"], "windows": [1]},
               "knn_clock": {"scores": ["knn", "elapsed"], "rule": "or", "joint": True, "windows": {"knn": [1, 3], "elapsed": [1]}},
               "select": {"select": ["knn", "knn_clock"], "keep_first_se": 1.0}}
    path = write_synthetic_store(tmp_path / "t.zarr", timeouts, seed=5, n_success_id=160, n_success_ood=0, n_fail_ood=0,
                                 n_fail_id=40, failure_reasons=["timeout"]).path
    config = small_config(methods=methods, baselines=[], references=["elapsed"], deploy_method="select", plot_method=None,
                          threshold_types=["constant", "band"], deltas=(0.05, 0.1, 0.15),
                          split={"fit": 0.25, "calibration": 0.35, "validation": 0.5})
    result = evaluate_rollouts(str(path), config)
    chosen = result.tasks["timeouts"].methods["select"].chosen
    ev = metrics_document(result)["tasks"]["timeouts"]["select_evidence"]
    knn, clock = ev["members"]["options"]
    assert chosen.selected == "knn_clock" == ev["members"]["kept"] and ev["threshold_type"] == chosen.threshold_type
    assert clock["kept"] and clock["best"] and not knn["kept"] and clock["advantage"] > 0.2 and 0 < clock["se"] < clock["advantage"]
    assert ev["members"]["reason"] == (f"`knn_clock` beats the first member `knn` by {clock['advantage']:+.3f}, "
                                       f"more than 1 SE ({clock['se']:.3f}): taken")
    section = _section(report_markdown(result), "### Why this member and threshold type (validation)")
    assert f"| `knn_clock` | {clock['advantage']:+.3f} | {clock['se']:.3f} | kept, best on validation |" in section
    assert "| `knn` | – | – |  |" in section and f"Member: {ev['members']['reason']}." in section


def test_each_reference_has_its_own_grey_line_style():
    names = ["deployed", "a", "clock", "novelty", "third"]
    styles = method_styles(names, "deployed", baselines={"a"}, references=["clock", "novelty", "third"])
    refs = [(styles[n]["color"], styles[n]["ls"]) for n in ("clock", "novelty", "third")]
    assert len(set(refs)) == 3  # two dotted grey references would be indistinguishable in the legend
    assert refs[0] == ("dimgrey", ":")
    assert all("grey" in colour for colour, _ in refs)


def test_plots_section_says_when_the_traces_are_not_of_the_deployed_method():
    from fiper.evaluation.render.report_md import _plots

    plots = {"method": "two", "threshold_type": "band", "delta": 0.05, "missing_kinds": [], "files": {"roc": "t_roc.png"}}
    text = "\n".join(_plots(plots, "mine"))
    assert "Traces of `two` (config `plot_method`, not the deployed `mine`; band threshold, δ = 0.05)" in text
    assert "references grey, each in its own line style" in text and "dotted grey" not in text
    assert "not the deployed" not in "\n".join(_plots(dict(plots, method="mine"), "mine"))


def test_the_deployed_legend_entry_names_the_threshold_type_deployed(noisy):
    from fiper.evaluation.render.plots import _label, deployed_kind

    result = noisy[0]
    task = result.tasks["synthetic"]
    kind = deployed_kind(task, "mine")  # the other panels draw the method's other types, which are not deployed
    assert kind == task.methods["mine"].chosen.threshold_type
    assert _label("mine", "mine", (), (), kind) == f"mine (deployed: {kind})"
    assert deployed_kind(task, "one") is None and _label("one", "mine", (), (), kind) == "one"


def test_the_roc_title_says_its_delta_and_that_the_reports_auroc_is_a_mean_over_delta():
    from fiper.evaluation.render.plots import roc_title

    assert roc_title("pick_place", 0.05) == ("pick_place: ROC on test at δ=0.05 (report.md's AUROC: mean over δ, "
                                             "and per δ for the deployed method)")
