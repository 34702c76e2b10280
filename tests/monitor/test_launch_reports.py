"""launch.fit / launch.calibrate say what they configured: δ and its source, the data used, the bound that holds."""

from __future__ import annotations

import yaml

from fiper.monitor import load_monitor
from launch import calibrate, fit
from test_monitor_launch import SMALL, run, write_rollouts


def test_the_delta_given_to_launch_fit_is_the_one_calibrated_and_recorded(tmp_path, capsys):
    fit_store, cal_store = write_rollouts(tmp_path / "fit.zarr", 8, seed=0), write_rollouts(tmp_path / "cal.zarr", 25, seed=1)
    out = tmp_path / "monitor"
    run(fit, "fit", [f"data={fit_store}", f"out={out}", *SMALL, "monitor.delta=0.05", "monitor.scores.ace.dims=[1]"])
    said = capsys.readouterr().out
    assert "at delta=0.05 (monitor.delta) unless given another delta=" in said
    assert "ace (window 3, action dims [1])" in said and "rnd_oe (window 2)," in said  # what ACE reads, said
    run(calibrate, "calibrate", [f"data={cal_store}", f"monitor_dir={out}"])
    assert "delta: 0.05, from launch.fit's monitor.delta" in capsys.readouterr().out
    assert load_monitor(out).delta == 0.05 and yaml.safe_load((out / "calibrate_config.yaml").read_text())["delta"] == 0.05
    run(calibrate, "calibrate", [f"data={cal_store}", f"monitor_dir={out}", "delta=0.2"])  # the command line wins
    assert load_monitor(out).delta == 0.2 and "delta: 0.2, from the command line" in capsys.readouterr().out


def test_calibrate_names_the_episodes_left_out_the_joint_source_and_the_bound(tmp_path, capsys):
    fit_store, cal_store = write_rollouts(tmp_path / "fit.zarr", 8, seed=0), write_rollouts(tmp_path / "cal.zarr", 40, seed=1)
    write_rollouts(cal_store, 3, seed=9, shift=1.0, success=False)
    out = tmp_path / "monitor"
    run(fit, "fit", [f"data={fit_store}", f"out={out}", *SMALL, "monitor.rule=or"])
    run(calibrate, "calibrate", [f"data={cal_store}", f"monitor_dir={out}", "delta=0.1"])
    said = capsys.readouterr().out
    assert "40 successful in-distribution episodes" in said and "(3 of the store's 43, failed or shifted, left out)" in said
    assert "warning: monitor: or of rnd_oe (window 2), ace (window 3)" in said and "<= 2 x delta = 0.2" in said
    run(calibrate, "calibrate", [f"data={cal_store}", f"monitor_dir={out}", "delta=0.1", "joint=true"])
    said = capsys.readouterr().out
    assert "threshold: constant (joint), from the monitor's spec, joint flag from the command line" in said
    assert "false alarms on successful in-distribution rollouts <= delta = 0.1" in said


def test_one_store_gives_the_fit_and_the_calibration_episodes_and_calibrating_on_fitted_ones_is_refused(tmp_path, capsys):
    import pytest

    store = write_rollouts(tmp_path / "all.zarr", 40, seed=0)
    write_rollouts(store, 2, seed=9, shift=1.0, success=False)  # episodes 40, 41: never used
    out = tmp_path / "monitor"
    run(fit, "fit", [f"data={store}", f"out={out}", *SMALL, "episodes=0:12"])
    assert "of 12 successful in-distribution episodes (30 of the store's 42, outside episodes=0:12, failed or shifted, left out)" \
        in capsys.readouterr().out
    assert load_monitor(out).fit_data["episodes"] == list(range(12))
    run(calibrate, "calibrate", [f"data={store}", f"monitor_dir={out}", "delta=0.1", "episodes=12:"])
    assert "calibration data: 28 successful in-distribution episodes" in capsys.readouterr().out
    assert all(t.guaranteed for t in load_monitor(out).thresholds.values())
    with pytest.raises(ValueError, match=r"calibration refused: 2 of its 30 calibration episodes of .* were fitted on \(episodes \[10, 11\]"):
        run(calibrate, "calibrate", [f"data={store}", f"monitor_dir={out}", "episodes=10:"])
    with pytest.raises(ValueError, match=r"episodes=\[3, 50\]: \[50\] not among the 42 episodes"):
        run(calibrate, "calibrate", [f"data={store}", f"monitor_dir={out}", "episodes=[3,50]"])
    with pytest.raises(ValueError, match=r"episodes=40: holds no successful in-distribution episode .*2 of its 42 episodes selected"):
        run(calibrate, "calibrate", [f"data={store}", f"monitor_dir={out}", "episodes=40:"])
    with pytest.raises(ValueError, match=r"episodes.*'start:stop' \(a slice of episode indices\) or a list of episode indices"):
        run(calibrate, "calibrate", [f"data={store}", f"monitor_dir={out}", "episodes=first_half"])


def test_launch_fit_gives_stac_the_env_steps_per_decision_the_store_records(tmp_path):
    store = write_rollouts(tmp_path / "fit.zarr", 8, seed=0)  # attrs n_action_steps=4
    out = tmp_path / "monitor"
    run(fit, "fit", [f"data={store}", f"out={out}", "~monitor", "+monitor={scores: {stac: {score: stac}}, windows: {stac: 2}}"])
    assert load_monitor(out).scores["stac"].config["n_action_steps"] == 4
