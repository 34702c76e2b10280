"""launch.pipeline: every stage runs end to end on the shipped policy (tiny budgets), reruns are cached, the act
stage puts its outcome table into the report once, and the image preset routes its env and policy overrides to the stages."""

from __future__ import annotations

import json
from pathlib import Path

from hydra import compose, initialize_config_dir

import numpy as np
import pytest
import yaml

from calibration import InsufficientCalibrationError
from fiper.evaluation.render.outcome import SECTION, put_section
from fiper.monitor import load_monitor
from fiper.storage import EpisodeStore
from launch import pipeline, train
from policies import load_policy

CONF = Path(__file__).resolve().parents[1] / "launch" / "conf"


def _compose(name: str, overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        return compose(config_name=name, overrides=overrides)


def _run(cfg):
    with initialize_config_dir(config_dir=str(CONF), version_base=None):  # the stages compose their own configs
        return pipeline.run(cfg)


def test_pipeline_runs_every_stage_then_caches(tmp_path, capsys, monkeypatch):
    run_dir = tmp_path / "run"
    cfg = _compose("pipeline", [
        f"run_dir={run_dir}", "collect.n_episodes=2", "env_overrides=['env.shifts=[]']",
        "rollouts.fit_episodes=10", "rollouts.calibration_episodes=10", "rollouts.num_samples=8", "rollouts.execute=medoid",
        "rollouts.cells=[[none,[0.0]],[init_pose,[1.0]]]", "rollouts.seeds_per_cell=4", "deploy_delta=0.3",
        "act.cells=[[init_pose,[1.0]]]", "act.seeds_per_cell=1", "act.responses=[hold]", "act.videos=false",
        "evaluate.deltas=[0.2]", "evaluate.split.fit=0.5", "evaluate.split.calibration=0.5",
        "evaluate.overrides=['windows=[1,episode]','progress=false','~methods.knn','~methods.rnd_a','~methods.logpzo']",
    ])
    report = _run(cfg)
    assert report == run_dir / "evaluation" / "report.md" and report.exists()
    for stage in ("demos.zarr", "policy", "id_fit.zarr", "id_calibration.zarr", "monitor", "stress.zarr", "evaluation", "monitor_chosen",
                  "act"):
        assert (run_dir / f"{stage}.done").exists(), stage
    choice = yaml.safe_load((run_dir / "evaluation" / "monitor_pick_place.yaml").read_text())
    chosen = load_monitor(run_dir / "monitor_chosen")  # the evaluated configuration, calibrated at deploy_delta
    assert chosen.windows == choice["monitor"]["windows"] and chosen.rule == choice["monitor"]["rule"]
    assert chosen.delta == 0.3 and {t.kind for t in chosen.thresholds.values()} == {choice["monitor"]["threshold_type"]}
    assert chosen.spec.as_dict() == {**choice["monitor"], "delta": 0.3}  # the evaluated spec, calibrated
    metrics = json.loads((run_dir / "evaluation" / "metrics.json").read_text())
    assert {r["method"] for r in metrics["records"]} >= {"fiper", "rnd_oe", "ace", "stac", "pca_kmeans", "mahalanobis"}
    assert metrics["tasks"]["pick_place"]["episodes"] == 10 + 10 + 2 * 4
    assert list((run_dir / "evaluation").glob("*.png"))
    for store in ("id_fit.zarr", "id_calibration.zarr", "stress.zarr"):  # rollouts.execute reached every rollout stage
        assert EpisodeStore.open(run_dir / store).attrs["stress_config"]["execute"] == "medoid"
    outcome = json.loads((run_dir / "act" / "outcome.json").read_text())  # the act stage: the outcome sweep on monitor_chosen
    assert outcome["overall"]["hold"]["episodes"] == 1 and outcome["cells"] == [["init_pose", 1.0]]
    assert EpisodeStore.open(run_dir / "act" / "hold.zarr").attrs["act_config"]["monitor_dir"] == str(run_dir / "monitor_chosen")
    text = report.read_text()
    assert text.count(f"## {SECTION}") == 1 and "| hold | 1 |" in text and "../act/outcome.md" in text
    capsys.readouterr()
    _run(cfg)  # every stage cached: nothing reruns, the report keeps one section
    assert capsys.readouterr().out.count("cached") == 9 and report.read_text() == text
    cfg.deploy_delta = 0.25  # a changed key reruns the stage it reaches, says so, and the saved config follows
    _run(cfg)
    log = capsys.readouterr().out
    assert log.count("cached") == 7 and "[fit + calibrate the chosen monitor] changed since it ran: config.1:calibrate.delta: 0.3 -> 0.25" in log
    assert "[act on the chosen monitor's alarms] changed since it ran: inputs.monitor" in log  # downstream of the new monitor
    assert report.read_text().count(f"## {SECTION}") == 1
    assert load_monitor(run_dir / "monitor_chosen").delta == 0.25
    assert yaml.safe_load((run_dir / "pipeline_config.yaml").read_text())["deploy_delta"] == 0.25
    cfg.act = None  # act=null: the stage's output and section of an earlier run go
    _run(cfg)
    assert f"[act] act=null: removing {run_dir / 'act'}" in capsys.readouterr().out
    assert not (run_dir / "act").exists() and SECTION not in report.read_text() and "## Task `pick_place`" in report.read_text()
    cfg.deploy_delta = 0.025  # the default δ, which 10 calibration rollouts cannot attain: refused before anything runs
    with pytest.raises(ValueError, match=r"deploy_delta=0.025 needs 77 calibration successes for the constant \(joint "
                                         r"calibration\) thresholds the evaluation may choose.*nothing has run yet"):
        _run(cfg)
    assert "cached" not in capsys.readouterr().out
    # counts that would do if every rollout succeeded: the successes the in-distribution rollouts gave are checked before
    # the stress rollouts, and past that (the checks bypassed) the stage's own
    monkeypatch.setattr(pipeline, "check_sizes", lambda *args: None)
    with pytest.raises(ValueError, match=r"the in-distribution rollouts gave \d+ of 10 fit and \d+ of 10 calibration successes.*"
                                         r"deploy_delta=0.025 needs 77 .*stopped before the stress rollouts"):
        _run(cfg)
    assert capsys.readouterr().out.count("cached") == 4  # collect, train and the two in-distribution rollout stages
    monkeypatch.setattr(pipeline, "check_recorded_successes", lambda *args: None)
    with pytest.raises(InsufficientCalibrationError, match=r"deploy stage: delta=0\.025 is unattainable .*raise "
                       r"rollouts\.calibration_episodes .* or deploy_delta \(now 0\.025\); the stages before this one are cached"):
        _run(cfg)
    assert capsys.readouterr().out.count("cached") == 7
    cfg.monitor.delta = 0.01  # the live monitor's δ, unattainable too: named with its own key
    with pytest.raises(InsufficientCalibrationError, match=r"live monitor stage: delta=0\.01 is unattainable .*raise "
                       r"rollouts\.calibration_episodes .* or monitor\.delta \(now 0\.01\); the stages before this one are cached"):
        _run(cfg)


def test_a_checkpoint_that_differs_in_sampling_only_is_used_with_the_runs_settings(tmp_path, capsys, monkeypatch):
    """train.n_action_steps and num_inference_steps other than the shipped checkpoint's: no training; the copy in
    run_dir/policy records the run's values, the checkpoint stays as it is, and the rollouts execute 8 steps per decision."""
    shipped = CONF.parent / "checkpoints" / "pick_place_diffusion_mlp"
    before = {p.name: p.read_bytes() for p in shipped.iterdir()}

    class Stopped(Exception):
        pass

    monkeypatch.setattr(train, "run", lambda cfg: pytest.fail("the pipeline trained instead of using train.checkpoint"))
    monkeypatch.setattr(pipeline, "check_fit_successes", lambda store: (_ for _ in ()).throw(Stopped()))  # after the fit rollouts
    run_dir = tmp_path / "run"
    with pytest.raises(Stopped):
        _run(_compose("pipeline", [f"run_dir={run_dir}", "collect.n_episodes=1", "env_overrides=['env.shifts=[]']", "progress=false",
                                   "train.n_action_steps=8", "train.overrides=['policy.num_inference_steps=8']",
                                   "rollouts.fit_episodes=2", "rollouts.num_samples=4"]))
    assert f"[train] using the trained checkpoint {shipped} (train.checkpoint) with this run's sampling-only settings " \
           f"n_action_steps=8 (the checkpoint's: 4), num_inference_steps=8 (the checkpoint's: 16), recorded in " \
           f"{run_dir / 'policy' / 'config.json'}" in capsys.readouterr().out
    policy = load_policy(run_dir / "policy", "cpu")
    assert (policy.n_action_steps, policy.config.num_inference_steps) == (8, 8)
    recorded = json.loads((run_dir / "policy" / "train_config.json").read_text())["policy"]
    assert (recorded["n_action_steps"], recorded["num_inference_steps"]) == (8, 8)
    assert {p.name: p.read_bytes() for p in shipped.iterdir()} == before
    store = EpisodeStore.open(run_dir / "id_fit.zarr")
    assert store.attrs["n_action_steps"] == 8
    for i in range(store.n_episodes):
        steps = store.episode_decisions(i, ["env_step"])["env_step"]
        assert len(steps) > 1 and set(np.diff(steps)) == {8}


def test_act_stage_refuses_an_unknown_response_before_anything_runs(tmp_path):
    cfg = _compose("pipeline", [f"run_dir={tmp_path / 'run'}", "act.responses=[hold,nope]"])
    with pytest.raises(ValueError, match=r"pipeline stage 'act on the chosen monitor's alarms': unknown response 'nope'.*act.responses"):
        _run(cfg)
    assert not (tmp_path / "run").exists()


def test_put_section_replaces_appends_and_removes_one_section(tmp_path):
    path = tmp_path / "report.md"
    path.write_text("# Report\n\n## Task\n\nrows\n")
    put_section(path, f"## {SECTION}\n\nfirst\n")
    assert path.read_text() == f"# Report\n\n## Task\n\nrows\n\n## {SECTION}\n\nfirst\n"
    put_section(path, f"## {SECTION}\n\nsecond\n")
    put_section(path, f"## {SECTION}\n\nsecond\n")
    assert path.read_text() == f"# Report\n\n## Task\n\nrows\n\n## {SECTION}\n\nsecond\n"
    path.write_text(path.read_text() + "## Later\n\nkept\n")  # a section after it is kept
    put_section(path, None)
    assert path.read_text() == "# Report\n\n## Task\n\nrows\n\n## Later\n\nkept\n"


def test_image_preset_routes_env_and_policy_overrides():
    cfg = _compose("pipeline_image", [])
    assert list(cfg.env_overrides) == ["env.obs_mode=image"] and cfg.train.checkpoint is None
    assert cfg.task == "pick_place" and cfg.monitor.rule == "and"  # everything else from the default pipeline
    train = _compose("train", ["data=d.zarr", "out=o", f"policy={cfg.train.policy}", *cfg.train.overrides])
    assert train.policy.encoder == "image" and train.policy.image_downsample == 2
    stress = _compose("stress", [f"env={cfg.task}", *cfg.env_overrides, "policy_dir=p", "out=o"])
    assert stress.env.obs_mode == "image"


def _evaluate_stage(pipeline_cfg):
    return _compose("evaluate", ["rollouts=r.zarr", "out=o", *pipeline.evaluate_overrides(pipeline_cfg)])


def test_setting_one_evaluation_setting_keeps_the_grid_the_split_and_the_monitors_score_settings():
    """The evaluation reads ACE's action entries from monitor.scores (one definition); an override of one setting
    keeps the δ grid and split; evaluate.overrides are applied last, so they win."""
    shipped = _evaluate_stage(_compose("pipeline", []))
    assert list(shipped.deltas) == [0.05, 0.06, 0.07, 0.08, 0.09, 0.1] and shipped.split.fit == 0.3 and shipped.split.calibration == 0.5
    assert list(shipped.scores.ace.dims) == [0, 1, 2] and shipped.deploy_method == "fiper_select"
    mine = _evaluate_stage(_compose("pipeline", ["evaluate.overrides=['deploy_method=fiper']", "monitor.scores.ace.dims=[0]",
                                                 "monitor.scores.ace.kappa=0.05"]))
    assert mine.deploy_method == "fiper" and list(mine.deltas) == list(shipped.deltas) and mine.split.fit == 0.3
    assert list(mine.scores.ace.dims) == [0] and mine.scores.ace.kappa == 0.05
    last = _evaluate_stage(_compose("pipeline", ["evaluate.deltas=[0.1]", "evaluate.overrides=['deltas=[0.2]','scores.ace.dims=null']"]))
    assert list(last.deltas) == [0.2] and last.scores.ace.dims is None
    image = _evaluate_stage(_compose("pipeline_image", []))  # deltas: null keeps launch/conf/evaluate.yaml's grid
    assert list(image.deltas) == [0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.1] and image.split.calibration == 0.6


def test_a_list_for_the_whole_evaluate_mapping_is_refused_naming_its_keys():
    with pytest.raises(SystemExit, match=r"evaluate is a mapping.*evaluate.deltas=\[0.05,0.1\].*evaluate.overrides=\['deploy_method=fiper'\]"):
        pipeline.check_list_quoting(["evaluate=['deltas=[0.1]']"])
    with initialize_config_dir(config_dir=str(CONF), version_base=None):  # the stages compose their own configs
        with pytest.raises(Exception, match=r"evaluate.split.fit=1.5: expected a number in \(0, 1\)"):
            pipeline.validate_all(compose("pipeline", ["evaluate.split.fit=1.5"]), Path("unused"))
        pipeline.validate_all(compose("pipeline", ["evaluate.overrides=['deploy_method=fiper']"]), Path("unused"))


def test_progress_false_turns_off_every_stages_bars_and_leaves_its_fingerprint(tmp_path):
    """One setting for a log file: each stage's bars off, and a stage cached with bars is still cached without them."""
    from launch.stages import UNFINGERPRINTED

    def settings(progress: str) -> dict[str, bool]:
        cfg = _compose("pipeline", [f"progress={progress}"])
        with initialize_config_dir(config_dir=str(CONF), version_base=None):
            steps = pipeline._steps(cfg, tmp_path, None)
            composed = {name: step.compose() for name, [step, *_] in steps.items() if name != pipeline.ACT_STAGE}
        return {name: (c.train.progress if name == "train" else c.progress) for name, c in composed.items()
                if name not in ("fit + calibrate monitor", "fit + calibrate the chosen monitor")}

    assert set(settings("true").values()) == {True} and set(settings("false").values()) == {False}
    assert len(settings("false")) == 6 and "progress" in UNFINGERPRINTED  # collect, train, three rollouts, evaluate


def test_the_act_stage_gives_launch_act_the_collect_stages_expert_for_its_check_of_seeded_resets(tmp_path):
    """The pipeline checks the act cells' seeded resets with collect.expert before anything runs; launch.act checks them
    again, with the same expert (an env that random actions blow up, gym-aloha's, is checked on the expert's episodes);
    a pipeline that collects nothing has no expert to give."""
    def expert(overrides: list[str]):
        cfg = _compose("pipeline", overrides)
        with initialize_config_dir(config_dir=str(CONF), version_base=None):
            [step, *_] = pipeline._steps(cfg, tmp_path, None)[pipeline.ACT_STAGE]
            return step.compose().expert

    assert expert([]) == "envs:make_expert" and expert(["collect.expert=my_pkg.experts:Mine"]) == "my_pkg.experts:Mine"
    assert expert([f"collect.demos={tmp_path / 'demos.zarr'}"]) is None
    assert expert(["env_overrides=['expert=my_pkg.experts:Other']"]) == "my_pkg.experts:Other"  # as the collect stage runs it


def test_the_act_stages_video_size_reaches_launch_act_and_is_checked(tmp_path):
    """act.video_size sets the outcome sweep's frame size (launch.act's video_size); left null, act.yaml's 160 stands."""
    def video_size(overrides: list[str]) -> int:
        cfg = _compose("pipeline", overrides)
        with initialize_config_dir(config_dir=str(CONF), version_base=None):
            [step, *_] = pipeline._steps(cfg, tmp_path, None)[pipeline.ACT_STAGE]
            return step.compose().video_size

    assert video_size([]) == 160 and video_size(["act.video_size=96"]) == 96
    with pytest.raises(ValueError, match=r"act.video_size"):
        pipeline.validate_all(_compose("pipeline", ["act.video_size=4"]), tmp_path / "run")
