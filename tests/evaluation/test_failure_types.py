"""Warning times: the control period comes from the store, timeouts are counted apart from physical
failures, and 'alarmed before onset' means strictly before, in the offline, live and per-cell tables alike."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.synthetic_stores import write_episodes
from fiper.evaluation.cells import cell_counts
from fiper.evaluation.failure_types import PHYSICAL, failure_type_detection
from fiper.evaluation.live import live_results
from fiper.evaluation.metrics import lead_time, metric_summary
from fiper.evaluation.rollouts import read_store

PERIOD, PER = 0.0125, 2  # seconds per env step (a task stepping at 80 Hz), env steps per decision
# episode: (failure_reason, failure_step, first alarm decision); 10 decisions = 20 env steps each
EPISODES = [
    ("", -1, -1),  # success
    ("dropped", 12, 3),  # alarm at env step 6: 6 steps = 0.075 s, 3 decisions before the onset decision 6
    ("dropped", 12, 6),  # alarm at env step 12, the onset step itself: no warning
    ("tipped_over", 9, 1),  # alarm at env step 2: 7 steps = 0.0875 s; onset in decision 4's chunk: 3 decisions
    ("timeout", 19, 8),  # flagged, but a time limit has no onset to warn of
    ("timeout", 19, -1),
]
FIRST = np.array([[a for _, _, a in EPISODES]])  # one delta


def _store(path, control_period_s=PERIOD):
    rng = np.random.default_rng(0)
    episodes = []
    for i, (reason, step, _) in enumerate(EPISODES):
        decisions = {"embedding": rng.normal(size=(10, 4)).astype(np.float32),
                     "samples": rng.normal(size=(10, 2, 2, 2)).astype(np.float16), "env_step": np.arange(10) * PER}
        meta = {"success": reason == "", "failure_step": step, "failure_reason": reason, "shift": "none", "severity": 0.0, "seed": i}
        episodes.append(({"action": np.zeros((20, 2), np.float32)}, decisions, meta))
    attrs = {"task": "t", "n_action_steps": PER, **({"control_period_s": control_period_s} if control_period_s else {})}
    write_episodes(path, episodes, attrs=attrs)
    return read_store(path)


def test_lead_time_counts_timeouts_apart_from_physical_failures(tmp_path):
    ro = _store(tmp_path / "r.zarr")
    assert ro.control_period_s == PERIOD
    old = lead_time(FIRST[0], ro.failed, ro.failure_step, PER, PERIOD)  # reasons unknown: the timeout's alarm counts
    assert (old.n_with_onset, old.n_before_onset) == (5, 3)
    lt = lead_time(FIRST[0], ro.failed, ro.failure_step, PER, PERIOD, ro.failure_reason)
    assert (lt.n_with_onset, lt.n_before_onset, lt.n_timeout, lt.n_timeout_flagged) == (3, 2, 2, 1)
    assert lt.fraction_before_onset == pytest.approx(2 / 3)
    assert lt.median_warning_s == pytest.approx((0.075 + 0.0875) / 2)
    assert lt.median_warning_decisions == 3.0
    report = metric_summary(FIRST, None, ro.failed, ro.lengths, failure_step=ro.failure_step, env_steps=PER,
                            control_period=PERIOD, failure_reason=ro.failure_reason)
    assert report["lead_n_timeout"] == 2 and list(report["lead_n_timeout_flagged"]) == [1]


def test_detection_by_failure_type_pins_each_reason(tmp_path):
    ro = _store(tmp_path / "r.zarr")
    table = failure_type_detection(ro, np.arange(6), [0.1], {"m": FIRST}, "constant", 0.1)
    assert (table.physical_with_onset, table.physical_with_onset_test) == (3, 3)
    rows = {r.reason: r for r in table.rows}
    assert [r.reason for r in table.rows] == ["dropped", "tipped_over", "timeout", PHYSICAL]
    got = {k: (r.failures, r.with_onset, r.flagged["m"], r.tpr["m"]) for k, r in rows.items()}
    assert got == {"dropped": (2, 2, 2, 1.0), "tipped_over": (1, 1, 1, 1.0), "timeout": (2, 0, 1, 0.5), PHYSICAL: (3, 3, 3, 1.0)}
    assert rows["dropped"].before_onset["m"] == 0.5 and rows["dropped"].median_warning_s["m"] == pytest.approx(0.075)
    assert rows["tipped_over"].median_warning_decisions["m"] == 3.0 and rows["tipped_over"].median_warning_s["m"] == pytest.approx(0.0875)
    assert np.isnan(rows["timeout"].before_onset["m"]) and np.isnan(rows["timeout"].median_warning_s["m"])
    assert rows[PHYSICAL].before_onset["m"] == pytest.approx(2 / 3)
    assert rows[PHYSICAL].median_warning_s["m"] == pytest.approx(0.08125)


def test_live_and_cell_tables_count_alarms_strictly_before_onset_like_the_offline_lead(tmp_path):
    ro = _store(tmp_path / "r.zarr")
    ro.live_alarm_decision = FIRST[0].copy()
    ro.live_alarm_step = np.where(FIRST[0] >= 0, FIRST[0] * PER, -1)
    ro.live_monitor = np.full(6, str(tmp_path / "no_monitor"))
    (cell,) = cell_counts(ro)
    assert (cell.alarmed_failures, cell.alarm_before_onset) == (4, 2)  # not the alarm at the onset step, not the timeout
    (live,) = live_results(ro)
    assert live["lead_fraction_before_onset"] == pytest.approx(cell.alarm_before_onset / live["with_onset"])
    assert (live["with_onset"], live["timeouts"], live["timeouts_flagged"]) == (3, 2, 1)
    assert live["lead_median_warning_s"] == pytest.approx(0.08125)


def test_a_store_without_control_period_reports_no_seconds(tmp_path):
    ro = _store(tmp_path / "r.zarr", control_period_s=None)
    assert np.isnan(ro.control_period_s) and any("control_period_s" in n for n in ro.notes)
    lt = lead_time(FIRST[0], ro.failed, ro.failure_step, PER, ro.control_period_s, ro.failure_reason)
    assert np.isnan(lt.median_warning_s) and lt.median_warning_decisions == 3.0
    assert read_store(tmp_path / "r.zarr", control_period_s=0.05).control_period_s == 0.05
    with pytest.raises(ValueError, match="control_period_s"):
        read_store(tmp_path / "r.zarr", control_period_s=-1.0)


def test_metrics_json_and_report_carry_the_failure_type_table(evaluated):
    result, out, _ = evaluated
    doc = json.loads((out / "metrics.json").read_text())
    for name, task in doc["tasks"].items():
        table = task["by_failure_type"]
        ro = result.tasks[name].rollouts
        assert table["physical_with_onset"] == int((ro.failed & (ro.failure_step >= 0)).sum())  # no timeouts recorded
        rows = {r["reason"]: r for r in table["rows"]}
        assert set(rows) == {"unknown", PHYSICAL} and rows[PHYSICAL]["failures"] == int(ro.failed[result.tasks[name].split.test].sum())
        # every column is the method's deployable row: the chosen records' lead figures, whatever type the plots draw
        assert table["threshold_type"] == "chosen" and result.config.plot_threshold_type == "band"
        for method, kind in table["method_types"].items():
            rec = next(r for r in doc["records"] if r["method"] == method and r["threshold_type"] == "chosen"
                       and r["delta"] == table["delta"])
            assert kind == rec["chosen_type"]
            np.testing.assert_equal(rows[PHYSICAL]["before_onset"][method], rec["lead_fraction_before_onset"])
    report = (out / "report.md").read_text()
    assert "### Detection by failure type (test)" in report and "physical failures with a mid-episode onset" in report


def test_the_failure_type_table_says_its_columns_are_the_methods(evaluated):
    """Methods are the columns of the failure-type table (failure types its rows); the lead's units are named."""
    _, out, _ = evaluated
    report = (out / "report.md").read_text()
    section = report[report.index("### Detection by failure type (test)"):].split("\n| failure type |")[0]
    assert "Columns: each method's deployable row" in section and "Rows: each method" not in section
    assert "δ = " in section and "delta=" not in section
    assert "median warning in whole decisions (onset's decision − alarm's) / seconds (onset step − alarm step, control period" in section
