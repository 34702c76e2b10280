"""launch.pipeline with policy_factory=: no demos are collected and no policy is trained; every later stage runs on
the external policy, records the factory and its weights in its fingerprint, and a rerun is cached."""

from __future__ import annotations

import json
from pathlib import Path

from external_policies import load
from hydra import compose, initialize_config_dir

from fiper.storage import EpisodeStore
from launch import pipeline

CONF = str(Path(__file__).resolve().parents[2] / "launch" / "conf")
TINY = ["policy_factory=external_policies:load", "device=cpu", "rollouts.fit_episodes=4", "rollouts.calibration_episodes=6",
        "rollouts.num_samples=2", "rollouts.cells=[[push,[1.0]]]", "rollouts.seeds_per_cell=2", "deploy_delta=null",
        "monitor.windows={rnd_oe: 2, ace: 2}", "monitor.delta=0.4",
        "monitor.scores={rnd_oe: {score: rnd_oe, train: {max_epochs: 2}}, ace: {score: ace, dims: [0]}}",
        "evaluate.deltas=[0.4]", "evaluate.split.fit=0.4", "evaluate.split.calibration=0.6",
        "evaluate.overrides=['windows=[1]','progress=false',"
        "'plots=false','~methods.knn','~methods.rnd_a','~methods.logpzo','~methods.stac','~methods.fiper_joint',"
        "'~methods.fiper_or_joint','~methods.fiper_select','deploy_method=null']"]


def test_the_pipeline_runs_on_an_external_policy_then_caches(tmp_path, capsys):
    run_dir = tmp_path / "run"
    with initialize_config_dir(config_dir=CONF, version_base=None):
        cfg = compose(config_name="pipeline", overrides=[f"run_dir={run_dir}", *TINY])
        assert pipeline.run(cfg) == run_dir / "evaluation" / "report.md"
        first = capsys.readouterr().out
        pipeline.run(cfg)
    assert "[collect, train] skipped: every stage loads policy_factory=external_policies:load" in first
    assert not (run_dir / "demos.zarr").exists() and not (run_dir / "policy").exists()
    assert (run_dir / "evaluation" / "report.md").exists() and capsys.readouterr().out.count("cached") == 5
    inputs = json.loads((run_dir / "id_fit.zarr.done").read_text())["fingerprint"]["values"]
    assert inputs["inputs.policy factory"] == "external_policies:load" and inputs["inputs.policy weights"] == load().fingerprint()
    store = EpisodeStore.open(run_dir / "stress.zarr")
    assert store.attrs["stress_config"]["policy_factory"] == "external_policies:load" and store.n_episodes == 2


def test_fit_rollouts_without_a_success_stop_the_pipeline_before_the_calibration_rollouts(tmp_path):
    """A policy that never succeeds in distribution gives the monitor nothing to learn: the pipeline says so after the
    fit rollouts, naming the fixes, and runs no calibration rollouts that could not be used either."""
    import pytest

    run_dir = tmp_path / "run"
    with initialize_config_dir(config_dir=CONF, version_base=None):
        cfg = compose(config_name="pipeline", overrides=[f"run_dir={run_dir}", *TINY,
                                                         "env_overrides=['++env.kwargs.max_episode_steps=1']"])  # every episode times out
        with pytest.raises(ValueError, match=r"no successful in-distribution episode to fit or calibrate on: of its 4 episodes 0 "
                                             r"succeeded.*stopped before the calibration rollouts"):
            pipeline.run(cfg)
    assert (run_dir / "id_fit.zarr.done").exists() and not (run_dir / "id_calibration.zarr").exists()


def test_a_steer_response_for_a_policy_that_refuses_guidance_stops_the_pipeline_before_any_stage(tmp_path):
    import pytest

    run_dir = tmp_path / "run"
    with initialize_config_dir(config_dir=CONF, version_base=None):
        cfg = compose(config_name="pipeline", overrides=[f"run_dir={run_dir}", *TINY,
                                                         "policy_factory=external_policies:unguided", "deploy_delta=0.4"])
        with pytest.raises(ValueError, match=r"pipeline stage 'act.*response 'steer' steers the policy's sampling.*"
                                             r"this adapter takes no guidance.*act.responses"):
            pipeline.run(cfg)
    assert not run_dir.exists()
