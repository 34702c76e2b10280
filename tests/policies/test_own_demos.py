"""Demonstrations written by another recorder: float64 columns, recorder keys, failed and very short episodes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from policy_helpers import tiny_config, tiny_train_config

from fiper.storage import EpisodeStore
from launch.validate import reported
from policies import train_policy


def own_store(path, successes=(True, True, True, False), length=6, failed_action=50.0):
    """Float64 episodes with a wall clock and a reward beside the observation; failed ones command ``failed_action``."""
    store = EpisodeStore.create(path, attrs={"task": "own"})
    rng = np.random.default_rng(0)
    for i, success in enumerate(successes):
        n = length + i
        action = rng.uniform(-1, 1, (n, 2)) if success else np.full((n, 2), failed_action)
        store.append_episode({"agent_pos": rng.normal(size=(n, 2)), "action": action, "wall_time": 1.7e9 + np.arange(n) * 0.1,
                              "reward": np.zeros(n)}, meta={"success": success})
    return path


def train(store, out, **overrides):
    return train_policy(store, tiny_train_config(tiny_config("diffusion"), 2, batch_size=8, **overrides), out)


def test_recorder_keys_are_not_read_as_observations(tmp_path, capsys):
    policy = train(own_store(tmp_path / "d.zarr"), tmp_path / "p").policy
    assert policy.obs_shapes == {"agent_pos": (2,)}
    assert "not read as observations: ['reward', 'wall_time']" in capsys.readouterr().out
    named = train_policy(tmp_path / "d.zarr", tiny_train_config(tiny_config("flow", obs_keys=["agent_pos", "wall_time"]), 2,
                                                                batch_size=8), tmp_path / "q").policy
    assert set(named.obs_shapes) == {"agent_pos", "wall_time"}


def test_failed_demos_are_left_out_unless_kept(tmp_path, capsys):
    store = own_store(tmp_path / "d.zarr")
    skipped = train(store, tmp_path / "skip", val_fraction=0.0).policy
    assert float(skipped.normalizer.action.center.abs().max()) < 1  # the failed episode's 50s were not fitted
    assert "leaving out 1 of 4 episodes whose meta/success is false" in capsys.readouterr().out
    kept = train(store, tmp_path / "keep", val_fraction=0.0, failed_demos="keep").policy
    assert float(kept.normalizer.action.center.max()) > 20


def test_a_store_of_failures_only_is_refused_naming_the_fix(tmp_path):
    with pytest.raises(ValueError, match="failed_demos=keep"):
        train(own_store(tmp_path / "d.zarr", successes=(False, False)), tmp_path / "p")


def test_episodes_shorter_than_the_horizon_train(tmp_path):
    result = train(own_store(tmp_path / "d.zarr", length=1), tmp_path / "p")  # 1..4 steps against a horizon of 8
    assert result.step == 2 and np.isfinite(result.train_loss[-1][1])


def test_an_existing_checkpoint_ends_the_command_with_the_fix(tmp_path):
    store = own_store(tmp_path / "d.zarr")
    train(store, tmp_path / "p")
    with pytest.raises(SystemExit, match="resume=true"), reported():
        train(store, tmp_path / "p")


def test_the_shipped_checkpoint_matches_demos_that_carry_recorder_keys(tmp_path):
    """The pipeline compares the checkpoint's observations with what training would read, which leaves wall_time out."""
    from hydra import compose, initialize_config_dir

    from launch import pipeline
    root = Path(__file__).resolve().parents[2]
    store = EpisodeStore.create(tmp_path / "d.zarr", attrs={"task": "pick_place"})
    store.append_episode({"agent_pos": np.zeros((3, 4)), "object": np.zeros((3, 7)), "obstacle": np.zeros((3, 4)),
                          "action": np.zeros((3, 4)), "wall_time": np.arange(3.0)})
    with initialize_config_dir(config_dir=str(root / "launch" / "conf"), version_base=None):
        cfg = compose(config_name="pipeline", overrides=[f"run_dir={tmp_path / 'run'}"])
        train_cfg = pipeline._steps(cfg, Path(cfg.run_dir), None)["train"][0].compose()
        assert pipeline.checkpoint_mismatch(root / cfg.train.checkpoint, tmp_path / "d.zarr", train_cfg, "pick_place") == []


def test_resuming_with_changed_settings_says_which(tmp_path, capsys):
    store = own_store(tmp_path / "d.zarr")
    train(store, tmp_path / "p")
    train_policy(store, tiny_train_config(tiny_config("diffusion"), 3, batch_size=8, cpu_threads=1), tmp_path / "p", resume=True)
    out = capsys.readouterr().out
    assert "resuming with changed settings {'steps': [2, 3]}" in out and "raises its decayed learning rate" in out


def test_the_pipeline_trains_on_given_demos_rather_than_use_the_shipped_checkpoint(tmp_path, capsys):
    from hydra import compose, initialize_config_dir

    from launch import pipeline
    root = Path(__file__).resolve().parents[2]
    store = EpisodeStore.create(tmp_path / "d.zarr", attrs={"task": "pick_place"})
    store.append_episode({"agent_pos": np.zeros((3, 4)), "object": np.zeros((3, 7)), "obstacle": np.zeros((3, 4)),
                          "action": np.zeros((3, 4))})
    with initialize_config_dir(config_dir=str(root / "launch" / "conf"), version_base=None):
        for given, expected in (([], root / "launch/checkpoints/pick_place_diffusion_mlp"), ([f"collect.demos={tmp_path / 'd.zarr'}"], None)):
            cfg = compose(config_name="pipeline", overrides=[f"run_dir={tmp_path / 'run'}", *given])
            step = pipeline._steps(cfg, Path(cfg.run_dir), None)["train"][0]
            assert pipeline.trained_checkpoint(cfg, tmp_path / "d.zarr", step) == expected
    assert "collect.demos is given" in capsys.readouterr().out
