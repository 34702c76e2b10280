"""launch.pipeline keys each cached stage on its fingerprint: a changed config or input reruns the stage and
every stage after it (naming the keys that changed), the shipped checkpoint is used only for its own task, and
the deploy stage reads the monitor file launch.evaluate wrote or says loudly that there is none."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from fiper.fingerprint import make_fingerprint
from fiper.storage import EpisodeStore
from launch import collect, pipeline
from launch import stages as stages_module
from launch.pipeline import Stages, checkpoint_mismatch, chosen_monitor_file

REPO = Path(__file__).resolve().parents[2]
CONF = str(REPO / "launch" / "conf")
POLICY = REPO / "launch" / "checkpoints" / "pick_place_diffusion_mlp"


def _write(path: Path, text: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "out.txt").write_text(text)


def test_a_changed_stage_reruns_with_everything_downstream_and_names_the_keys(tmp_path, capsys):
    stages, up, down = Stages(tmp_path), tmp_path / "up", tmp_path / "down"
    runs = []

    def both(settings: dict) -> None:
        stages.run("up", up, make_fingerprint({"config": settings, "inputs": {}}), lambda: (runs.append("up"), _write(up, str(settings))))
        stages.run("down", down, make_fingerprint({"config": {}, "inputs": stages.upstream(up)}),
                   lambda: (runs.append("down"), _write(down, (up / "out.txt").read_text())))

    both({"seeds_per_cell": 20, "delta": 0.1})
    both({"seeds_per_cell": 20, "delta": 0.1})
    assert runs == ["up", "down"] and capsys.readouterr().out.count("cached") == 2
    (up / "stale.txt").write_text("written by the old settings")
    both({"seeds_per_cell": 5, "delta": 0.05})
    log = capsys.readouterr().out
    assert runs == ["up", "down", "up", "down"]
    assert "[up] changed since it ran: config.delta: 0.1 -> 0.05; config.seeds_per_cell: 20 -> 5; rerunning" in log
    assert "[down] changed since it ran: inputs.up: sha256:" in log
    assert not (up / "stale.txt").exists() and "'seeds_per_cell': 5" in (down / "out.txt").read_text()
    recorded = json.loads((tmp_path / "up.done").read_text())["fingerprint"]
    assert recorded["values"]["config.seeds_per_cell"] == 5
    shutil.rmtree(up)  # lost output, same settings: rebuilt, and what was made from it is rebuilt too
    both({"seeds_per_cell": 5, "delta": 0.05})
    log = capsys.readouterr().out
    assert runs[-2:] == ["up", "down"] and "[up] changed since it ran: up is missing; rerunning" in log and "cached" not in log


class _Probe(pipeline.Step):
    """A step that composes to a fixed config (no hydra), for fingerprint tests."""

    def compose(self):
        return OmegaConf.create({"n": 1})


def test_a_stage_reruns_when_the_source_it_ran_changed_and_only_then(tmp_path, capsys, monkeypatch):
    pkg = tmp_path / "src" / "probe_pkg"
    (pkg / "models").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "train_code.py").write_text("STEPS = 1\n")
    (pkg / "models" / "arm.xml").write_text("<mujoco/>\n")
    (pkg / "score_code.py").write_text("K = 5\n")
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    monkeypatch.setitem(stages_module.CODE, "probe_train", ("probe_pkg/train_code.py", "probe_pkg/models"))
    monkeypatch.setattr(stages_module, "ALL_CODE", ("probe_pkg",))
    stages, runs = Stages(tmp_path / "run"), []
    (tmp_path / "run").mkdir()

    def run_both() -> None:
        for name in ("probe_train", "probe_eval"):
            out = tmp_path / "run" / name
            step = _Probe(module=None, config_name=name, overrides=[])
            stages.run(name, out, stages.fingerprint([step], {}), lambda out=out, name=name: (runs.append(name), _write(out, name)))

    run_both()
    run_both()
    assert runs == ["probe_train", "probe_eval"]
    (pkg / "score_code.py").write_text("K = 7\n")  # outside the training code: only the stage that runs all of it reruns
    run_both()
    log = capsys.readouterr().out
    assert runs[2:] == ["probe_eval"] and "[probe_train] cached" in log
    assert "[probe_eval] changed since it ran: code.probe_pkg/score_code.py: sha256:" in log
    (pkg / "models" / "arm.xml").write_text("<mujoco model='heavier'/>\n")  # a model file counts as source
    run_both()
    log = capsys.readouterr().out
    assert runs[3:] == ["probe_train", "probe_eval"]
    assert "[probe_train] changed since it ran: code.probe_pkg/models/arm.xml: sha256:" in log
    monkeypatch.setitem(stages_module.CODE, "probe_train", ("probe_pkg/gone.py",))
    with pytest.raises(FileNotFoundError, match=r"cannot fingerprint the source of 'probe_pkg/gone\.py'"):
        run_both()


class _NamingProbe(pipeline.Step):
    """A step whose config names the user's own code, as env.factory / collect.expert / a controller do."""

    def compose(self):
        return OmegaConf.create({"env": {"factory": "probe_user_env:make", "kwargs": {"device": "cuda:0"}},
                                 "response_configs": {"brake": {"fallback": {"controller": self.overrides[0]}}}})


def test_a_stage_reruns_when_the_users_own_code_its_config_names_changed(tmp_path, capsys, monkeypatch):
    """An env factory, expert or controller named as 'module:function' or 'file.py:function' is source the stage ran:
    editing it reruns the stage, naming the file; an unchanged one keeps the stage cached."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "probe_user_env.py").write_text("RADIUS = 0.05\n")
    controller = tmp_path / "brake.py"
    controller.write_text("GAIN = 2.0\n")
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    stages, runs = Stages(tmp_path / "run"), []
    (tmp_path / "run").mkdir()
    out = tmp_path / "run" / "probe"

    def run_once() -> None:
        step = _NamingProbe(module=None, config_name="probe_collect", overrides=[f"{controller}:brake"])
        stages.run("probe", out, stages.fingerprint([step], {}), lambda: (runs.append(1), _write(out, "x")))

    run_once()
    run_once()
    assert len(runs) == 1 and "[probe] cached" in capsys.readouterr().out
    (tmp_path / "src" / "probe_user_env.py").write_text("RADIUS = 0.08\n")
    run_once()
    assert len(runs) == 2 and "[probe] changed since it ran: code.probe_user_env.py: sha256:" in capsys.readouterr().out
    controller.write_text("GAIN = 3.0\n")
    run_once()
    assert len(runs) == 3 and f"changed since it ran: code.{controller}: sha256:" in capsys.readouterr().out


def test_code_changes_keep_reuses_a_stage_whose_only_change_is_its_source_and_no_other(tmp_path, capsys, monkeypatch):
    pkg = tmp_path / "src" / "probe_keep"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "code.py").write_text("MESSAGE = 'old'\n")
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    monkeypatch.setattr(stages_module, "ALL_CODE", ("probe_keep",))
    runs, up, down = [], tmp_path / "run" / "up", tmp_path / "run" / "down"
    (tmp_path / "run").mkdir()

    def both(code_changes: str, n: int = 1) -> None:
        stages = Stages(tmp_path / "run", code_changes)
        for name, out, inputs in (("up", up, lambda: {}), ("down", down, lambda: stages.upstream(up))):
            step = _Probe(module=None, config_name=name, overrides=[])
            fingerprint = stages.fingerprint([step], {**inputs(), "n": n})
            stages.run(name, out, fingerprint, lambda out=out, name=name: (runs.append(name), _write(out, name)))

    both("rerun")
    (pkg / "code.py").write_text("MESSAGE = 'new wording'\n")
    both("keep")
    log = capsys.readouterr().out
    assert runs == ["up", "down"], "a source-only change under keep reran a stage"
    assert "[up] kept (code_changes=keep)" in log and "probe_keep/code.py" in log and "[down] kept" in log
    both("keep", n=2)  # a changed input is never kept: both stages rerun
    log = capsys.readouterr().out
    assert runs == ["up", "down", "up", "down"] and "[up] changed since it ran: code.probe_keep/code.py" in log
    assert "inputs.n: 1 -> 2" in log and "would reuse" not in log
    (pkg / "code.py").write_text("MESSAGE = 'newer'\n")
    both("rerun", n=2)  # the default reruns on a source change, and says keep would have reused it
    log = capsys.readouterr().out
    assert runs[4:] == ["up", "down"] and "only source files changed: code_changes=keep would reuse the output" in log
    with pytest.raises(ValueError, match=r"code_changes must be one of \['rerun', 'keep'\], got 'skip'"):
        Stages(tmp_path, "skip")


def test_an_interrupted_stage_resumes_only_with_its_own_fingerprint(tmp_path, capsys):
    stages, out = Stages(tmp_path), tmp_path / "store"
    first = make_fingerprint({"config": {"cells": 1}})

    def crash():
        _write(out, "half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        stages.run("rollouts", out, first, crash)
    assert (tmp_path / "store.pending").exists() and not (tmp_path / "store.done").exists()
    stages.run("rollouts", out, first, lambda: (out / "out.txt").write_text((out / "out.txt").read_text() + "+rest"))
    assert (out / "out.txt").read_text() == "half+rest" and "resuming an interrupted run" in capsys.readouterr().out
    (tmp_path / "store.done").unlink()
    (tmp_path / "store.pending").write_text(json.dumps({"fingerprint": first}))
    stages.run("rollouts", out, make_fingerprint({"config": {"cells": 2}}), lambda: _write(out, "fresh"))
    assert (out / "out.txt").read_text() == "fresh" and "made by an unfinished run with other settings" in capsys.readouterr().out


def test_a_stage_that_fails_before_writing_leaves_no_marker(tmp_path):
    stages, out = Stages(tmp_path), tmp_path / "nothing"
    with pytest.raises(RuntimeError):
        stages.run("x", out, make_fingerprint({}), lambda: (_ for _ in ()).throw(RuntimeError("boom")))
    assert list(tmp_path.iterdir()) == []


def _pipeline_cfg(overrides: list[str]):
    return compose(config_name="pipeline", overrides=overrides)


def test_the_shipped_checkpoint_is_used_only_for_the_task_and_settings_it_was_trained_with(tmp_path):
    with initialize_config_dir(config_dir=CONF, version_base=None):
        for env in ("pick_place", "push_t"):
            collect.run(compose(config_name="collect", overrides=[f"env={env}", "n_episodes=1", f"out={tmp_path / env}.zarr",
                                                                  "progress=false"]))

        def reasons(demos: str, overrides: list[str] = ()) -> list[str]:
            cfg = _pipeline_cfg([f"run_dir={tmp_path / 'run'}", *overrides])
            train = pipeline._steps(cfg, Path(cfg.run_dir), None)["train"][0].compose()
            return checkpoint_mismatch(POLICY, tmp_path / demos, train, cfg.train.checkpoint_task)

        assert reasons("pick_place.zarr") == []
        wrong = reasons("push_t.zarr", ["task=push_t"])
        assert wrong[0] == "it was trained for task 'pick_place', this run's demos are task 'push_t'"
        assert wrong[1].startswith("it reads observations {'agent_pos': (4,), 'object': (7,), 'obstacle': (4,)}, the demos hold")
        assert "its action has 4 dims, the demos' 2" in wrong
        assert reasons("pick_place.zarr", ["train.steps=100"]) == ["it was trained with steps=8000, this run asks for 100"]
        assert reasons("pick_place.zarr", ["train.n_action_steps=8"]) == []  # sampling only: the pipeline's copy takes the run's
        assert reasons("pick_place.zarr", ["train.overrides=['policy.horizon=8']"]) == \
            ["it was trained with policy.horizon=16, this run asks for 8"]


def test_the_deploy_stage_reads_the_file_evaluate_wrote_for_the_stores_task(tmp_path):
    store = tmp_path / "stress.zarr"
    EpisodeStore.create(store, attrs={"task": "custom"})  # what launch.stress records for an env without a name
    report = tmp_path / "evaluation"
    report.mkdir()
    (report / "monitor_pick_place.yaml").write_text("{}")
    with pytest.raises(FileNotFoundError, match=r"wrote no monitor_custom\.yaml for task 'custom'.*monitor_pick_place\.yaml.*deploy_delta=null"):
        chosen_monitor_file(report, store)
    (report / "monitor_custom.yaml").write_text("{}")
    assert chosen_monitor_file(report, store) == report / "monitor_custom.yaml"


def test_a_users_env_trains_its_own_policy_and_a_missing_deploy_file_stops_the_run(tmp_path, capsys):
    """The shipped pick-and-place checkpoint is not copied in for another env (the pipeline says why and trains),
    and a deploy stage without the evaluation's monitor file is an error naming it, not a silent skip."""
    env = "test_array_obs_pipeline"  # its Track env: one array observation, one action dim
    tiny = ["policy.horizon=8", "policy.embed_dim=16", "policy.encoder_hidden=32", "policy.mlp_hidden=64", "policy.mlp_layers=2",
            "policy.num_inference_steps=4", "train.val_every=1000", "train.checkpoint_every=1000000", "train.progress=false"]
    with initialize_config_dir(config_dir=CONF, version_base=None):
        cfg = _pipeline_cfg([
            f"run_dir={tmp_path / 'run'}", "task=push_t", "device=cpu", "collect.n_episodes=4", "train.steps=20", "train.batch_size=32",
            "train.overrides=[" + ",".join(f"'{o}'" for o in tiny) + "]", "deploy_delta=0.3",
            f"env_overrides=['env.factory={env}:make_track','env.name=null','++expert={env}:TrackExpert','++progress=false',"
            "'++env.control_period_s=0.05']",  # Track declares no dt: the config states its period
            "rollouts.fit_episodes=8", "rollouts.calibration_episodes=8", "rollouts.num_samples=4",
            "rollouts.cells=[[none,[0.0]],[push,[1.0]]]", "rollouts.seeds_per_cell=3", "monitor.delta=0.3",
            "monitor.windows={rnd_oe: 2, ace: 2}", "monitor.scores={rnd_oe: {score: rnd_oe, train: {max_epochs: 2}}, ace: {score: ace, dims: [0]}}",
            "evaluate.deltas=[0.3]", "evaluate.split.fit=0.5", "evaluate.split.calibration=0.5",
            "evaluate.overrides=['windows=[1]','progress=false',"
            "'plots=false','~methods.knn','~methods.rnd_a','~methods.logpzo','~methods.stac','~methods.fiper_joint',"
            "'~methods.fiper_or_joint','~methods.fiper_select','deploy_method=null']", "act.videos=false",  # Track does not render
            "act.responses=[hold]", "act.overrides=['context.position_dims=[0]','context.gripper_dims=[]']",  # nor a scene to steer around; its one action entry is a position
        ])
        with pytest.raises(FileNotFoundError, match=r"wrote no monitor_Track\.yaml for task 'Track'.*deploy_delta=null"):
            pipeline.run(cfg)  # an env without a name or gymnasium id is named by its class
    log = capsys.readouterr().out
    assert "[train] not using train.checkpoint=launch/checkpoints/pick_place_diffusion_mlp: it was trained for task 'pick_place', " \
           "this run's demos are task 'Track'" in log and "Training a policy from the collected demos instead (train.steps=20)" in log
    policy = json.loads((tmp_path / "run" / "policy" / "config.json").read_text())
    assert policy["obs_shapes"] == {"obs": [2]} and policy["action_dim"] == 1
    assert not (tmp_path / "run" / "pipeline_config.yaml").exists()  # the run did not finish: no config claims its outputs


def test_an_env_that_declares_no_control_period_is_refused_before_anything_runs(tmp_path):
    """Warning times in seconds need the env's period: asked for before collecting and training, not at the first
    rollouts, with the two ways to state it in the pipeline."""
    env = "test_array_obs_pipeline"  # its Track env declares no dt
    overrides = [f"run_dir={tmp_path / 'run'}", "task=push_t", "device=cpu", "rollouts.cells=[[none,[0.0]],[push,[1.0]]]",
                 f"env_overrides=['env.factory={env}:make_track','env.name=null','++expert={env}:TrackExpert']",
                 "monitor.scores.ace.dims=[0]"]
    with initialize_config_dir(config_dir=CONF, version_base=None):
        with pytest.raises(ValueError, match=r"one step of Track .*add `control_period_s: <seconds per env step>` to the env "
                                             r"group \(\"env_overrides=\['\+\+env.control_period_s=<seconds>'\]\" on the command "
                                             r"line\).*nothing has run"):
            pipeline.run(_pipeline_cfg(overrides))
        assert not (tmp_path / "run").exists()
        stated = _pipeline_cfg([*overrides[:3], f"env_overrides=['env.factory={env}:make_track','env.name=null',"
                                               "'++env.control_period_s=0.05']"])
        rollouts = pipeline._steps(stated, tmp_path / "run", None)["fit rollouts"][0].compose()
        assert pipeline.check_env(pipeline.plain(rollouts.env), pipeline.plain(rollouts.factories)) == 0.05


class CameraTrack(gym.Wrapper):
    """Track with a channel-first camera beside its state, as many camera wrappers give it."""

    metadata = {"render_fps": 20}

    def __init__(self, env):
        super().__init__(env)
        self.observation_space = gym.spaces.Dict({"state": env.observation_space,
                                                  "camera": gym.spaces.Box(0, 255, (3, 8, 8), np.uint8)})

    def _obs(self, state):
        return {"state": state, "camera": np.full((3, 8, 8), int(abs(state[0]) * 50) % 256, np.uint8)}

    def reset(self, **kwargs):
        state, info = self.env.reset(**kwargs)
        return self._obs(state), info

    def step(self, action):
        state, *rest = self.env.step(action)
        return (self._obs(state), *rest)


def make_camera_track(shifts=None):
    from test_array_obs_pipeline import make_track

    return CameraTrack(make_track(shifts))


def test_an_image_the_policies_would_misread_is_refused_before_anything_runs(tmp_path):
    """A channel-first camera would be flattened into the low-dim encoder's input without a word: the pipeline
    names the key, its shape and the fix before collecting, and training on it is refused too."""
    factory = "env_overrides=['env.factory=test_fingerprint_pipeline:make_camera_track','env.name=null'," \
              "'++expert=test_array_obs_pipeline:TrackExpert','++env.control_period_s=0.05']"
    overrides = [f"run_dir={tmp_path / 'run'}", "task=push_t", "device=cpu", "rollouts.cells=[[none,[0.0]],[push,[1.0]]]",
                 factory, "monitor.scores.ace.dims=[0]", "++act=null"]
    with initialize_config_dir(config_dir=CONF, version_base=None):
        with pytest.raises(ValueError, match=r"observation 'camera' has per-step shape \(3, 8, 8\).*np.moveaxis a channel-first "
                                             r"image.*policy.obs_keys.*nothing has run yet"):
            pipeline.run(_pipeline_cfg(overrides))
        assert not (tmp_path / "run").exists()
        state_only = _pipeline_cfg([*overrides, "train.overrides=['policy.obs_keys=[state]']"])
        pipeline.validate_all(state_only, tmp_path / "run")  # the policy reads the state only: nothing to refuse
    store = EpisodeStore.create(tmp_path / "float_images.zarr")
    store.append_episode({"image": np.random.default_rng(0).random((6, 8, 8, 3)).astype(np.float32),
                          "action": np.zeros((6, 2), np.float32)})
    from policies import TrainConfig, train_policy

    with pytest.raises(ValueError, match=r"observation 'image' is an \(H, W, 3\) image of dtype float32: images are read as uint8"):
        train_policy(tmp_path / "float_images.zarr", TrainConfig.from_dict({"steps": 1}), tmp_path / "policy")


def test_an_env_that_cannot_render_the_act_stages_videos_is_refused_before_anything_runs(tmp_path):
    """The outcome sweep's videos need frames: an env factory without render_mode stops the pipeline before it collects,
    naming act.videos=false, instead of after every stage has run."""
    env = "test_array_obs_pipeline"
    overrides = [f"run_dir={tmp_path / 'run'}", "task=push_t", "device=cpu", "rollouts.cells=[[none,[0.0]],[push,[1.0]]]",
                 f"env_overrides=['env.factory={env}:make_track','env.name=null','++expert={env}:TrackExpert',"
                 "'++env.control_period_s=0.05']", "monitor.scores.ace.dims=[0]", "act.cells=[[none,[0.0]],[push,[1.0]]]",
                 "act.responses=[hold]", "act.overrides=['context.position_dims=[0]','context.gripper_dims=[]']"]
    with initialize_config_dir(config_dir=CONF, version_base=None):
        with pytest.raises(ValueError, match=r"videos=true makes the env of cell \(none, 0\) with render_mode='rgb_array'.*"
                                             r"make_track\(\) got an unexpected keyword argument 'render_mode'.*"
                                             r"in the pipeline: act.videos=false; nothing has run yet"):
            pipeline.run(_pipeline_cfg(overrides))
        assert not (tmp_path / "run").exists()
        pipeline.validate_all(_pipeline_cfg([*overrides, "act.videos=false"]), tmp_path / "run")


def test_a_response_the_env_cannot_serve_is_refused_before_anything_runs(tmp_path):
    """The default steering reads the obstacles from the env's scene_obstacles(), and a fallback holds positions: an env
    without the one, or whose action entries are not named as positions, stops the pipeline before it collects, naming
    the settings, instead of at the outcome sweep."""
    env = "test_array_obs_pipeline"
    overrides = [f"run_dir={tmp_path / 'run'}", "task=push_t", "device=cpu", "rollouts.cells=[[none,[0.0]],[push,[1.0]]]",
                 f"env_overrides=['env.factory={env}:make_track','env.name=null','++expert={env}:TrackExpert',"
                 "'++env.control_period_s=0.05']", "monitor.scores.ace.dims=[0]", "act.cells=[[none,[0.0]]]", "act.videos=false"]
    with initialize_config_dir(config_dir=CONF, version_base=None):
        with pytest.raises(ValueError, match=r"nothing has run yet\): response 'steer' cannot act on this env: Track has no "
                                             r"scene_obstacles\(\).*drop 'steer' from responses \(the pipeline's act.responses\)"):
            pipeline.run(_pipeline_cfg(overrides))
        assert not (tmp_path / "run").exists()
        fallbacks = [*overrides, "act.responses=[hold,retreat,return_retry]"]
        with pytest.raises(ValueError, match=r"\(nothing has run yet\): a fallback \(hold, stop, retreat, return_retry, ...\) commands "
                                             r"positions, but this env's 1-d action does not say which entries are position targets"):
            pipeline.run(_pipeline_cfg(fallbacks))  # the fallbacks hold positions: which entries are they?
        assert not (tmp_path / "run").exists()
        pipeline.validate_all(_pipeline_cfg([*fallbacks, "act.overrides=['context.position_dims=[0]','context.gripper_dims=[]']"]), tmp_path / "run")


def test_a_controller_response_on_an_env_that_names_no_positions_needs_no_context_settings(tmp_path, monkeypatch):
    """A force- or torque-driven env's fallback is a controller of its own, which commands no positions: with only such
    responses the pipeline's checks pass without context.position_dims; a response holding positions still needs them."""
    (tmp_path / "track_brake.py").write_text("import numpy as np\n\ndef brake(obs):\n    return np.zeros(1, np.float32)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    env = "test_array_obs_pipeline"
    overrides = [f"run_dir={tmp_path / 'run'}", "task=push_t", "device=cpu", "rollouts.cells=[[none,[0.0]],[push,[1.0]]]",
                 f"env_overrides=['env.factory={env}:make_track','env.name=null','++expert={env}:TrackExpert',"
                 "'++env.control_period_s=0.05']", "monitor.scores.ace.dims=[0]", "act.cells=[[none,[0.0]]]", "act.videos=false",
                 "act.responses=[brake]",
                 "act.overrides=[\"+response_configs.brake={preset: controller, fallback: {controller: 'track_brake:brake'}}\"]"]
    with initialize_config_dir(config_dir=CONF, version_base=None):
        pipeline.validate_all(_pipeline_cfg(overrides), tmp_path / "run")
        with pytest.raises(ValueError, match=r"\(nothing has run yet\): a fallback \(hold, stop, retreat, return_retry, ...\) commands "
                                             r"positions, but this env's 1-d action does not say which entries are position targets"):
            pipeline.run(_pipeline_cfg([*overrides[:-2], "act.responses=[brake,hold]", overrides[-1]]))
        assert not (tmp_path / "run").exists()
