"""The live monitor's recorded alarms are scored with the offline metric definitions, per monitor."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from fiper.evaluation.live import live_results
from fiper.evaluation.render.tables_md import live_markdown
from fiper.evaluation.rollouts import load_rollouts
from benchmarks.synthetic_stores import write_synthetic_store
from fiper.monitor import save_monitor
from fiper.monitor.fitting import fit_monitor
from fiper.monitor.decision_data import load_decisions, successful_in_distribution


def test_live_alarms_give_the_metrics_of_the_monitored_episodes_only(tmp_path):
    monitor_dir = tmp_path / "monitor"
    store = write_synthetic_store(tmp_path / "live.zarr", seed=0, n_success_id=5, n_success_ood=3, n_fail_id=2, n_fail_ood=4)
    zarr.open_group(str(tmp_path / "live.zarr"), mode="a").attrs["stress_config"] = {"monitor_dir": str(monitor_dir)}
    write_synthetic_store(tmp_path / "plain.zarr", seed=1, n_success_id=30, n_success_ood=0, n_fail_id=0, n_fail_ood=0)
    data, identity = load_decisions(store, episodes=successful_in_distribution(store))
    monitor = fit_monitor(data, identity, scores={"m": {"score": "mahalanobis"}}, rule="single")
    raw = monitor.score_offline(data.embeddings, data.samples, data.decision_ends)
    monitor.calibrate(raw, data.decision_ends, delta=0.2, threshold_type="constant")
    save_monitor(monitor, monitor_dir)

    ro = load_rollouts([str(tmp_path / "live.zarr"), str(tmp_path / "plain.zarr")])["synthetic"]
    live = ro.store_index == 0
    assert (ro.live_monitor[live] == str(monitor_dir)).all() and (ro.live_monitor[~live] == "").all()
    assert (ro.live_alarm_decision == -1).all()  # the synthetic writer records no alarm
    failures, successes_id = np.flatnonzero(live & ro.failed), np.flatnonzero(live & ro.success & ~ro.ood)
    ro.live_alarm_decision[failures[:2]] = 1
    ro.live_alarm_decision[successes_id[0]] = 0
    ro.live_alarm_decision[np.flatnonzero(~live)[:10]] = 0  # unmonitored episodes never count, whatever they hold

    [result] = live_results(ro)
    assert result["monitor"] == str(monitor_dir) and result["setting"] == "single, constant, δ=0.2" and result["delta"] == 0.2
    assert (result["episodes"], result["failures"]) == (14, 6)
    assert result["tpr"] == pytest.approx(2 / 6) and result["tnr"] == pytest.approx(7 / 8)
    assert result["accuracy"] == pytest.approx((2 / 6 + 7 / 8) / 2)
    assert (result["far_id"], result["far_id_flagged"], result["far_id_n"]) == (pytest.approx(1 / 5), 1, 5)
    assert result["far_id_se"] == pytest.approx(np.sqrt(0.2 * 0.8 / 5))
    table = "\n".join(live_markdown([result]))
    assert "### Live monitor" in table and "| 14 | 6 | 0.33 | 0.88 |" in table


def test_no_live_monitor_means_no_section(tmp_path):
    write_synthetic_store(tmp_path / "r.zarr", seed=0, n_success_id=5, n_success_ood=1, n_fail_id=1, n_fail_ood=1)
    ro = load_rollouts(str(tmp_path / "r.zarr"))["synthetic"]
    assert live_results(ro) == [] and live_markdown([]) == []


def test_the_terminal_summary_and_metrics_name_the_live_monitor(tmp_path):
    from evaluation_helpers import ONE_RUN, small_config
    from fiper.evaluation import evaluate_rollouts, summary_table
    from fiper.evaluation.render import metrics_document

    write_synthetic_store(tmp_path / "r.zarr", seed=2, **ONE_RUN)
    zarr.open_group(str(tmp_path / "r.zarr"), mode="a").attrs["stress_config"] = {"monitor_dir": str(tmp_path / "gone")}
    result = evaluate_rollouts(str(tmp_path / "r.zarr"), small_config(methods={"knn": {"scores": ["knn"]}}, plot_method=None))
    text = summary_table(result)
    assert f"live monitor {tmp_path / 'gone'} (settings not readable), 80 rollouts: TWA" in text and "TPR 0.00" in text
    [live] = metrics_document(result)["tasks"]["synthetic"]["live"]
    assert live["episodes"] == 80 and live["tpr"] == 0.0 and live["far_id"] == 0.0 and live["setting"] == ""


def test_a_long_method_name_keeps_the_summary_columns_aligned(tmp_path):
    from evaluation_helpers import ONE_RUN, small_config
    from fiper.evaluation import evaluate_rollouts, summary_table

    write_synthetic_store(tmp_path / "r.zarr", seed=2, **ONE_RUN)
    methods = {"knn": {"scores": ["knn"]}, "knn_with_a_long_name_here": {"scores": ["knn"]}}
    text = summary_table(evaluate_rollouts(str(tmp_path / "r.zarr"), small_config(methods=methods, plot_method=None)))
    lines = text.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("method"))
    table = [line for line in lines[head:] if line.startswith(("method", "knn"))]
    assert len(table) >= 3
    column = lines[head].index("threshold")
    assert all(line[column - 1] == " " and line[column] != " " for line in table)


def test_a_monitor_recorded_relative_to_the_run_is_found_from_another_directory(tmp_path, monkeypatch):
    """launch.stress ran in the project folder and recorded runs/x/monitor; evaluated from elsewhere, the folder above
    the store under which that path holds a monitor gives its settings."""
    run = tmp_path / "project" / "runs" / "x"
    store = write_synthetic_store(run / "stress.zarr", seed=0, n_success_id=30, n_success_ood=0, n_fail_id=2, n_fail_ood=0)
    zarr.open_group(str(run / "stress.zarr"), mode="a").attrs["stress_config"] = {"monitor_dir": "runs/x/monitor"}
    data, identity = load_decisions(store, episodes=successful_in_distribution(store))
    monitor = fit_monitor(data, identity, scores={"m": {"score": "mahalanobis"}}, rule="single")
    monitor.calibrate(monitor.score_offline(data.embeddings, data.samples, data.decision_ends), data.decision_ends, delta=0.2)
    save_monitor(monitor, run / "monitor")
    monkeypatch.chdir(tmp_path)  # not the folder launch.stress ran in
    [result] = live_results(load_rollouts([str(run / "stress.zarr")])["synthetic"])
    assert result["monitor"] == str(run / "monitor") and result["setting"] == "single, constant, δ=0.2"
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    zarr.open_group(str(run / "stress.zarr"), mode="a").attrs["stress_config"] = {"monitor_dir": "runs/gone"}
    [result] = live_results(load_rollouts([str(run / "stress.zarr")])["synthetic"])
    assert result["monitor"] == "runs/gone" and result["setting"] == ""  # nowhere to be found: as recorded
