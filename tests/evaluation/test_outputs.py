"""End to end: merged stores -> metrics.json, report.md, config.json and PNG plots; FIPER is wired right."""

from __future__ import annotations

import json

import numpy as np
import pytest

from calibration import THRESHOLD_KINDS, fit_joint
from evaluation_helpers import DELTAS
from fiper.aggregation import evaluate_alarms, windowed_sum
from fiper.evaluation import EvaluationConfig
from fiper.evaluation.config import DEFAULT_METHODS
from fiper.monitor.padding import to_padded


def test_metrics_json_has_every_method_type_and_delta(evaluated):
    result, out, _ = evaluated
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["format"] == "fiper-evaluation"
    records = doc["records"]
    methods = set(DEFAULT_METHODS) - {"reconstruction", "fiper_rec_or_joint"}  # no camera image in the stores: left out, noted
    assert {r["method"] for r in records} == methods
    assert doc["tasks"]["synthetic"]["left_out"] == ("its stores record no camera image (data/<key> whose steps have height and "
                                                     "width of at least 16 pixels, with no channel axis or one of at most 4 first "
                                                     "or last), so fiper_rec_or_joint, reconstruction (reading one) are left "
                                                     "out")  # fiper_select keeps the rest, unsaid
    assert {r["threshold_type"] for r in records} == {*THRESHOLD_KINDS, "chosen"}
    for m in methods:
        for kind in (*THRESHOLD_KINDS, "chosen"):
            mine = [r for r in records if r["method"] == m and r["threshold_type"] == kind]
            assert sorted(r["delta"] for r in mine if r["delta"] != "mean") == sorted(DELTAS)
            assert sum(r["delta"] == "mean" for r in mine) == 1
            assert mine[0]["guaranteed"] == THRESHOLD_KINDS.get(kind, True)  # 'chosen' is a guaranteed type
            assert all(r["chosen_type"] == (None if kind != "chosen" else mine[0]["chosen_type"]) for r in mine)
            assert kind != "chosen" or mine[0]["chosen_type"] in ("constant", "band")
    fields = {"tpr", "tnr", "accuracy", "dt", "twa", "auroc", "far_id", "far_id_se", "success_id_flag_rate", "success_ood_flag_rate",
              "fail_id_flag_rate", "fail_ood_flag_rate", "lead_fraction_before_onset", "lead_median_warning_s", "window", "task"}
    assert fields <= set(records[0])
    assert {r["task"] for r in records} == {"synthetic"}
    # Both runs were merged into one task of 2 x 58 episodes.
    assert doc["tasks"]["synthetic"]["episodes"] == 116 and len(doc["tasks"]["synthetic"]["stores"]) == 2
    assert sum(doc["tasks"]["synthetic"]["split"][p]["total"] for p in ("fit", "calibration", "validation", "test")) == 116


def test_mean_record_is_the_mean_over_deltas(evaluated):
    result, _, _ = evaluated
    records = [r for r in result.records() if r["method"] == "ace" and r["threshold_type"] == "constant"]
    per_delta = [r for r in records if r["delta"] != "mean"]
    mean = next(r for r in records if r["delta"] == "mean")
    for key in ("tpr", "tnr", "twa", "accuracy", "auroc", "far_id"):
        assert mean[key] == np.mean([r[key] for r in per_delta])
    # accuracy is balanced accuracy in every record
    for r in per_delta:
        assert np.isclose(r["accuracy"], (r["tpr"] + r["tnr"]) / 2)


def test_metrics_json_records_are_the_engines_records(evaluated):
    """Rendering changes no number: metrics.json holds exactly the engine's records (NaN as null)."""
    from fiper.evaluation.render.metrics_json import json_safe

    result, out, _ = evaluated
    assert json.loads((out / "metrics.json").read_text())["records"] == json_safe(result.records())


def test_report_and_plots_exist(evaluated):
    result, out, paths = evaluated
    report = (out / "report.md").read_text()
    for method in set(DEFAULT_METHODS) - {"reconstruction", "fiper_rec_or_joint"}:  # no camera image to reconstruct
        assert f"| {method} |" in report
    assert "Winners" in report and "Chosen windows" in report and "### Split" in report
    pngs = [p for key, p in paths.items() if key.startswith("plot:")]
    assert {p.name for p in pngs} == {"synthetic_traces_band.png", "synthetic_roc.png", "synthetic_twa_vs_delta.png"}
    for p in pngs:
        data = p.read_bytes()
        assert len(data) > 5000 and data[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({p.name})" in report
    saved = EvaluationConfig.from_mapping(json.loads((out / "config.json").read_text()))
    assert saved.as_dict() == result.config.as_dict()


def test_fiper_separates_failures(evaluated):
    result, _, _ = evaluated
    fiper = result.tasks["synthetic"].methods["fiper"]
    for kind, res in fiper.types.items():
        assert np.mean(res.test["auroc"]) > 0.8, kind
        assert np.mean(res.test["tpr"]) > 0.8, kind
    # guaranteed thresholds keep false alarms of ID successes low; STAC (a weak score here) is worse than FIPER
    assert np.mean(fiper.types["constant"].test["twa"]) > np.mean(result.tasks["synthetic"].methods["stac"].types["constant"].test["twa"])


def test_grid_alarms_match_the_reference_alarm_evaluation(evaluated):
    """The broadcast grid gives the same first alarms as fiper.aggregation.evaluate_alarms."""
    result, _, _ = evaluated
    task = result.tasks["synthetic"]
    test = task.split.test
    lengths = task.rollouts.lengths[test]
    width = int(lengths.max())
    for method in ("fiper", "stac"):
        spec = task.methods[method].spec
        for kind, res in task.methods[method].types.items():
            for d in range(len(DELTAS)):
                scores, windows, thresholds = {}, {}, {}
                for s in spec.scores:
                    grid = task.grids[s]
                    w = grid.index(res.windows[s])
                    scores[s] = to_padded(task.scored.raw[s], task.rollouts.decision_ends)[0][test, :width]
                    windows[s] = int(grid.windows[w])
                    thresholds[s] = grid.thresholds[kind][w][d]
                trace = evaluate_alarms(scores, windows, thresholds, lengths, spec.rule)
                np.testing.assert_array_equal(trace.first_alarm, res.test_alarms.first_alarm[0, d])
                np.testing.assert_allclose(trace.max_ratio, res.test_alarms.max_ratio[0, d], rtol=1e-12)


def test_joint_method_alarms_with_fit_joint_thresholds(evaluated):
    """fiper_joint's test alarms are evaluate_alarms with calibration.fit_joint thresholds of its chosen windows."""
    result, _, _ = evaluated
    task = result.tasks["synthetic"]
    cal, test = task.split.calibration, task.split.test
    lengths, cal_lengths = task.rollouts.lengths[test], task.rollouts.lengths[cal]
    width = int(lengths.max())
    joint = task.methods["fiper_joint"]
    for kind in ("constant", "band"):
        res = joint.types[kind]
        windows = {s: int(task.grids[s].windows[task.grids[s].index(res.windows[s])]) for s in joint.spec.scores}
        padded = {s: to_padded(task.scored.raw[s], task.rollouts.decision_ends)[0] for s in joint.spec.scores}
        cal_eta = {s: windowed_sum(padded[s][cal], windows[s], cal_lengths) for s in joint.spec.scores}
        for d, delta in enumerate(DELTAS):
            thresholds = fit_joint(kind, cal_eta, cal_lengths, delta, rule="and", seed=result.config.seed,
                                   d1_fraction=result.config.band_d1_fraction)
            trace = evaluate_alarms({s: p[test, :width] for s, p in padded.items()}, windows, thresholds, lengths, "and")
            np.testing.assert_array_equal(trace.first_alarm, res.test_alarms.first_alarm[0, d])


def test_cell_detection_adds_up_to_the_test_counts(evaluated):
    """Per-cell flagged failures / successes sum to each method's TP / FP at the reported type and delta."""
    result, out, _ = evaluated
    doc = json.loads((out / "metrics.json").read_text())
    det = doc["tasks"]["synthetic"]["cell_detection"]
    assert det["threshold_type"] == "chosen"  # each method's deployable row, whatever the plots draw
    cells = det["cells"]
    assert {c["shift"] for c in cells} >= {"none"} and len(cells) >= 2
    for method in result.tasks["synthetic"].methods:
        rec = next(r for r in doc["records"] if r["method"] == method and r["threshold_type"] == "chosen"
                   and r["delta"] == det["delta"])
        assert det["method_types"][method] == rec["chosen_type"]
        assert sum(c["flagged_failures"][method] for c in cells) == rec["tp"]
        assert sum(c["flagged_successes"][method] for c in cells) == rec["fp"]
        assert sum(c["failures"] for c in cells) == rec["n_fail"] and sum(c["successes"] for c in cells) == rec["n_succ"]
    assert "### Detection per stress cell (test)" in (out / "report.md").read_text()


def test_fit_and_calibration_use_only_their_episodes(evaluated):
    result, _, _ = evaluated
    task = result.tasks["synthetic"]
    ro, split = task.rollouts, task.split
    id_success = np.flatnonzero(ro.success & ~ro.ood)
    assert np.isin(split.fit, id_success).all() and np.isin(split.calibration, id_success).all()
    assert not np.intersect1d(split.test, np.concatenate([split.fit, split.calibration])).size
    # the k-NN score keeps every fit decision as its reference set: exactly the fit episodes' decisions
    assert task.scored.fitted["knn"].reference.shape[0] == int(ro.lengths[split.fit].sum())
    for grid in task.grids.values():
        for per_window in grid.thresholds.values():
            assert all(th.num_calibration == split.calibration.size for row in per_window for th in row)


def test_select_evidence_in_metrics_json_and_report_is_the_engines_choice(evaluated):
    """The deployed select's evidence: one entry per member, the first at advantage 0, the kept member and
    threshold type the ones the engine deployed, each advantage the validation criterion's difference."""
    result, out, _ = evaluated
    [(name, task)] = result.tasks.items()
    doc = json.loads((out / "metrics.json").read_text())["tasks"][name]["select_evidence"]
    chosen = task.methods["fiper_select"].chosen
    spec = task.methods["fiper_select"].spec
    assert doc["method"] == "fiper_select" and doc["threshold_type"] == chosen.threshold_type
    members = doc["members"]
    assert [o["name"] for o in members["options"]] == list(spec.select)
    assert members["kept"] == chosen.selected and sum(o["kept"] for o in members["options"]) == 1
    assert members["options"][0]["advantage"] == 0.0 and members["options"][0]["se"] is None
    crit = [task.methods[m].types[chosen.threshold_type].validated(result.config.selection) for m in spec.select]
    assert [o["advantage"] for o in members["options"]] == pytest.approx([c - crit[0] for c in crit], abs=1e-9)
    assert members["keep_first_se"] == spec.keep_first_se == 1.0
    types = doc["threshold_types"]
    assert types["kept"] == chosen.threshold_type and [o["name"] for o in types["options"]] == ["constant", "band"]
    report = (out / "report.md").read_text()
    block = report[report.index("### Why this member and threshold type (validation)"):]
    for o in members["options"]:
        assert f"| `{o['name']}` |" in block
    assert f"Member: {members['reason']}." in block and f"Threshold type: {types['reason']}." in block


def _flags(flags: list[np.ndarray]):
    """One candidate per member: first alarm at decision 2 where flagged, else none (one delta)."""
    from fiper.evaluation.grid import CandidateAlarms

    first = np.stack([np.where(f, 2, -1) for f in flags])[:, None, :]
    return CandidateAlarms([(0,)] * len(flags), first.astype(np.int64), first.astype(np.float64))


def test_choice_evidence_says_which_option_was_kept_and_why_with_the_numbers():
    """First kept where it is best; kept where another wins within 1 SE (that one marked best, its SE shown);
    the other taken where it wins by more than 1 SE."""
    from fiper.evaluation.select_evidence import choice_evidence
    from fiper.evaluation.selection import choose_member

    failed = np.arange(40) < 20
    lengths = np.full(40, 10)
    first = failed & (np.arange(40) < 10)  # 10 of 20 failures, no false alarm
    narrow = (failed & (np.arange(40) < 12)) | (np.arange(40) == 39)  # 2 more failures, 1 false alarm: +0.025, within noise
    clear = failed.copy()  # all 20
    names = ["a", "b", "c"]
    best_first = choice_evidence(names[:2], choose_member(_flags([clear, first]), failed, lengths, 10, "accuracy", 1.0), 1.0)
    assert best_first.kept == "a" and [o.se for o in best_first.options] == [None, None]
    assert best_first.reason == "the first member `a` validates best: kept"
    kept = choice_evidence(names[:2], choose_member(_flags([first, narrow]), failed, lengths, 10, "accuracy", 1.0), 1.0)
    assert kept.kept == "a" and kept.options[1].best and not kept.options[1].kept
    assert kept.options[1].advantage == pytest.approx(0.025) and kept.options[1].se > 0.025
    assert kept.reason.startswith("`b` validates best, by +0.025 over `a`, within 1 SE (") and kept.reason.endswith("`a` kept")
    switched = choice_evidence(names, choose_member(_flags([first, narrow, clear]), failed, lengths, 10, "accuracy", 1.0), 1.0)
    assert switched.kept == "c" and switched.options[2].advantage == pytest.approx(0.25)
    assert switched.options[2].se < 0.25 and switched.reason.startswith("`c` beats the first member `a` by +0.250, more than 1 SE")


def test_every_column_of_the_select_evidence_tables_has_a_header(evaluated):
    _, out, _ = evaluated
    report = (out / "report.md").read_text()
    block = report[report.index("### Why this member and threshold type (validation)"):].split("\n### ")[0]
    headers = [line for line in block.splitlines() if line.startswith("| member (") or line.startswith("| threshold type |")]
    assert headers and all("|  |" not in h and h.endswith("| SE | outcome |") for h in headers)
