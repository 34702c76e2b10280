"""The monitor file an evaluation writes deploys the configuration it measured, with the same alarms."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from hydra import compose, initialize_config_dir

from evaluation_helpers import ONE_RUN, TINY_SCORES, small_config
from fiper.evaluation import evaluate_rollouts
from fiper.evaluation.deploy import deployed_spec, write_monitor_files
from benchmarks.synthetic_stores import write_synthetic_store
from fiper.monitor import load_monitor
from fiper.monitor.monitor_file import read_monitor_file, write_monitor_file
from fiper.monitor.spec import MonitorSpec
from fiper.monitor.fitting import fit_monitor
from fiper.monitor.decision_data import load_decisions
from fiper.storage import EpisodeStore

CONF = Path(__file__).resolve().parents[2] / "launch" / "conf"
# an "and" of separately calibrated scores: guaranteed at delta, so deployable (a separate "or" is not)
PAIR = {"maha_and_knn": {"scores": ["mahalanobis", "knn"], "rule": "and"}, "knn": {"scores": ["knn"]}}


def _config(**overrides):
    return small_config(methods=PAIR, plot_method=None, **overrides)


def _run(module, config_name, overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        return module.run(compose(config_name=config_name, overrides=overrides))


def test_deployed_choice_reproduces_the_evaluated_alarms(tmp_path):
    """Fit + calibrate from the file on the evaluation's own fit / calibration episodes: same test alarms, every delta."""
    store_path = tmp_path / "r.zarr"
    write_synthetic_store(store_path, seed=3, **ONE_RUN)
    config = _config(threshold_types=["constant"], windows=[1, 3, "episode"], deploy_method="maha_and_knn")
    result = evaluate_rollouts([str(store_path)], config)
    task = result.tasks["synthetic"]
    path = write_monitor_files(result, tmp_path)["synthetic"]
    choice = read_monitor_file(path)
    record = next(r for r in result.records() if r["method"] == "maha_and_knn" and r["delta"] == "mean")
    assert record["threshold_type"] == "constant"  # one guaranteed type: it is the deployed one
    spec = choice["spec"]
    assert spec.windows == record["window_decisions"] and spec.rule == "and"
    assert (spec.threshold_type, spec.joint) == ("constant", False)
    assert spec.scores["knn"].params["k"] == TINY_SCORES["knn"]["k"]

    store = EpisodeStore.open(store_path)
    fit, identity = load_decisions(store, episodes=np.sort(task.split.fit))
    monitor = fit_monitor(fit, identity, spec)
    cal, _ = load_decisions(store, episodes=np.sort(task.split.calibration))
    test_idx = np.sort(task.split.test)
    test, _ = load_decisions(store, episodes=test_idx)
    failed = ~store.meta("success").astype(bool)[test_idx]
    per_delta = {r["delta"]: r for r in result.records() if r["method"] == "maha_and_knn" and r["delta"] != "mean"}
    for delta, rec in per_delta.items():
        monitor.calibrate(monitor.score_offline(cal.embeddings, cal.samples, cal.decision_ends), cal.decision_ends,
                          delta=delta)  # threshold type and joint flag: the spec's
        flagged = monitor.alarms_offline(monitor.score_offline(test.embeddings, test.samples, test.decision_ends), test.decision_ends).flagged
        assert (int((flagged & failed).sum()), int((flagged & ~failed).sum())) == (rec["tp"], rec["fp"]), delta
    evaluated = {e["delta"]: e for e in choice["evaluated"]["test_per_delta"]}
    assert all(evaluated[d]["tpr"] == pytest.approx(r["tpr"], abs=1e-4) for d, r in per_delta.items())


def test_launch_fit_and_calibrate_deploy_the_chosen_row(tmp_path, capsys):
    """launch.evaluate writes monitor_<task>.yaml; launch.fit monitor_file= and launch.calibrate (no kind) deploy it."""
    import launch.calibrate
    import launch.evaluate
    import launch.fit

    store = tmp_path / "r.zarr"
    write_synthetic_store(store, seed=5, **ONE_RUN)
    keep = {"mahalanobis", "knn"}
    drop = [f"~methods.{m}" for m in ("fiper", "fiper_joint", "fiper_or_joint", "fiper_select", "rnd_oe", "ace", "stac", "rnd_a", "logpzo",
                                      "pca_kmeans") if m not in keep]
    out = tmp_path / "eval"
    _run(launch.evaluate, "evaluate", [f"rollouts={store}", f"out={out}", "deltas=[0.1,0.2]", "plots=false", "progress=false",
                                       "plot_method=knn", "+method@methods.pick=fiper_select", "methods.pick.select=[mahalanobis,knn]",
                                       "deploy_method=pick", *drop])
    chosen = next(r for r in json.loads((out / "metrics.json").read_text())["records"]
                  if r["method"] == "pick" and r["threshold_type"] == "chosen" and r["delta"] == "mean")
    file = out / "monitor_synthetic.yaml"
    text = file.read_text()
    assert text.startswith("# Monitor chosen by launch.evaluate") and "monitor_file=" in text
    assert "monitor_synthetic.yaml" in (out / "report.md").read_text()
    said = capsys.readouterr().out  # the terminal names the deployed file, what it configures and the next command
    assert f"deployed pick (member {chosen['selected']}) for task 'synthetic': {chosen['rule']} of " in said and f"-> {file}" in said
    assert f"next: python -m launch.fit data=<successful rollouts> out=<monitor dir> monitor_file={file}" in said

    monitor_dir = tmp_path / "monitor"
    _run(launch.fit, "fit", [f"data={store}", f"out={monitor_dir}", f"monitor_file={file}"])
    # one synthetic store for fit and calibration: allowed explicitly, the thresholds lose the guarantee
    _run(launch.calibrate, "calibrate", [f"data={store}", f"monitor_dir={monitor_dir}", "delta=0.1", "allow_overlap=true"])
    printed = capsys.readouterr().out
    assert f"from the monitor file {file}" in printed, printed[-1500:]
    monitor = load_monitor(monitor_dir)
    assert list(monitor.names) == chosen["scores"] and monitor.rule == chosen["rule"]
    assert monitor.windows == chosen["window_decisions"]
    saved = json.loads((monitor_dir / "monitor.json").read_text())
    assert saved["extra"]["calibrate"]["threshold_type"] == chosen["chosen_type"]
    recorded = yaml.safe_load((monitor_dir / "fit_config.yaml").read_text())["monitor"]  # what was fitted, not the default group
    assert sorted(recorded["scores"]) == sorted(chosen["scores"]) and recorded["rule"] == chosen["rule"]
    assert recorded["windows"] == chosen["window_decisions"] == saved["extra"]["fit"]["monitor"]["windows"]
    assert {t["kind"] for t in saved["thresholds"].values()} == {chosen["chosen_type"]}

    _run(launch.calibrate, "calibrate", [f"data={store}", f"monitor_dir={monitor_dir}", "delta=0.1", "threshold_type=time_varying",
                                         "allow_overlap=true"])
    assert "from the command line" in capsys.readouterr().out
    assert {t["kind"] for t in json.loads((monitor_dir / "monitor.json").read_text())["thresholds"].values()} == {"time_varying"}


@pytest.mark.parametrize("edit, message", [
    (lambda c: c.pop("monitor"), "needs the section 'monitor'"),
    (lambda c: c["monitor"]["windows"].update(knn=0), "whole number of decisions"),
    (lambda c: c["monitor"].update(rule="single"), "'single' takes exactly one"),
    (lambda c: c["monitor"].update(threshold_type="adaptive"), "threshold type 'adaptive' unknown"),
    (lambda c: c["monitor"]["scores"]["knn"].update(k=0), "k must be >= 1"),
    (lambda c: c.update(format="other"), "not a fiper monitor file"),
    (lambda c: c.update(evaluated=[0.8]), "section 'evaluated' must map"),
])
def test_broken_monitor_files_are_refused_with_the_fix(tmp_path, edit, message):
    spec = MonitorSpec.of({"rule": "or", "windows": {"mahalanobis": 3, "knn": 1}, "threshold_type": "band", "joint": True,
                           "scores": {"mahalanobis": {"score": "mahalanobis"}, "knn": {"score": "knn", "k": 3}}})
    path = write_monitor_file(spec, {}, tmp_path / "ok.yaml", header="a\n\nb")
    assert read_monitor_file(path)["spec"] == spec and path.read_text().startswith("# a\n#\n# b\n")
    choice = yaml.safe_load(path.read_text())
    edit(choice)
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(choice))
    with pytest.raises(ValueError, match=message) as err:
        read_monitor_file(tmp_path / "bad.yaml")
    assert "launch.evaluate" in str(err.value) and "bad.yaml" in str(err.value)
    with pytest.raises(FileNotFoundError, match="monitor_file="):
        read_monitor_file(tmp_path / "missing.yaml")


def test_a_monitor_file_written_by_hand_fits_without_an_evaluated_section(tmp_path):
    """A user's own configuration (no evaluation behind it) deploys like an evaluated one."""
    spec = MonitorSpec.of({"rule": "or", "windows": {"mahalanobis": 1, "knn": 1}, "threshold_type": "constant", "joint": True,
                           "scores": {"mahalanobis": {"score": "mahalanobis"}, "knn": {"score": "knn", "k": 3}}})
    document = yaml.safe_load(write_monitor_file(spec, {"num_samples": 8}, tmp_path / "ok.yaml").read_text())
    document.pop("evaluated")
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(document))
    mine = read_monitor_file(tmp_path / "mine.yaml")
    assert mine["spec"] == spec and mine["evaluated"] == {}
    import launch.fit

    store, monitor_dir = tmp_path / "id.zarr", tmp_path / "monitor"
    write_synthetic_store(store, seed=5, **ONE_RUN)
    _run(launch.fit, "fit", [f"data={store}", f"out={monitor_dir}", f"monitor_file={tmp_path / 'mine.yaml'}"])
    assert sorted(load_monitor(monitor_dir).scores) == ["knn", "mahalanobis"]


def test_deploy_method_defaults_and_errors():
    assert _config().deploy_method is None  # the default fiper_select was dropped: no file
    with pytest.raises(ValueError, match="deploy_method=null"):
        _config(deploy_method="nope")


def test_no_guaranteed_type_means_no_file(tmp_path):
    store = tmp_path / "r.zarr"
    write_synthetic_store(store, seed=1, **ONE_RUN)
    result = evaluate_rollouts([str(store)], _config(threshold_types=["time_varying"], deploy_method="knn"))
    assert deployed_spec(result.tasks["synthetic"], "knn") is None
    assert write_monitor_files(result, tmp_path) == {}


def test_a_namespaced_gymnasium_task_gets_one_monitor_file(tmp_path):
    """A task named from a gymnasium id with a namespace ('Meta-World/MT1') is written as one file, not a folder."""
    store = tmp_path / "r.zarr"
    write_synthetic_store(store, seed=1, **ONE_RUN)
    EpisodeStore.open(store, mode="a").set_attrs(task="Meta-World/MT1")
    result = evaluate_rollouts([str(store)], _config(threshold_types=["constant"], deploy_method="knn"))
    path = write_monitor_files(result, tmp_path / "report")["Meta-World/MT1"]
    assert path == tmp_path / "report" / "monitor_Meta-World_MT1.yaml"
    assert read_monitor_file(path)["evaluated"]["task"] == "Meta-World/MT1"


@pytest.mark.parametrize("given, expected", [
    ({}, ("band", True)),                              # the file's pair
    ({"joint": False}, ("band", False)),               # the file's kind, joint switched off
    ({"threshold_type": "constant"}, ("constant", False)),  # a type of one's own does not inherit the file's joint flag
    ({"threshold_type": "constant", "joint": True}, ("constant", True)),
])
def test_calibrate_takes_the_files_threshold_pair_unless_told(given, expected):
    from omegaconf import OmegaConf

    from launch.calibrate import threshold_settings

    class Fitted:  # a monitor fitted from a file whose spec says band, joint
        threshold_type, joint = "band", True

    class Default:
        threshold_type, joint = "constant", False

    cfg = OmegaConf.create({"threshold_type": None, "joint": None, **given})
    assert threshold_settings(cfg, Fitted(), {"monitor_file": {"file": "m.yaml"}}) == expected
    assert threshold_settings(OmegaConf.create({"threshold_type": None, "joint": None}), Default(), {}) == ("constant", False)
