"""A user env whose observation is one flat array (a gymnasium Box) goes through every stage:
collect, train, the monitored fit / calibration / stress rollouts, fit, calibrate and evaluate
(launch.pipeline), then the MuJoCo push-T task behind gymnasium's FlattenObservation."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from hydra import compose, initialize_config_dir

import envs
from fiper.collection import collect
from fiper.env_io import observation_dict
from fiper.control import MonitoredPolicy, RolloutRecorder, run_episode
from fiper.control.history import ObsHistory
from fiper.monitor import load_monitor
from fiper.storage import EpisodeStore
from launch import pipeline

CONF = str(Path(__file__).resolve().parents[2] / "launch" / "conf")
STEPS = 24  # env steps per episode


class Track(gym.Env):
    """Drive a point to x = 1 and keep it inside [-1, 3] (any policy within the action bounds does); the
    'push' shift drifts it out (a failure)."""

    observation_space = gym.spaces.Box(-10, 10, (2,), np.float32)  # [x, velocity]
    action_space = gym.spaces.Box(-1, 1, (1,), np.float32)

    def __init__(self, drift: float = 0.0):
        self.drift = drift

    def _obs(self) -> np.ndarray:
        return np.array([self.x, self.v], np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x, self.v, self.t = float(self.np_random.uniform(-0.2, 0.2)), 0.0, 0
        return self._obs(), {}

    def step(self, action):
        self.v = 0.1 * float(np.clip(action[0], -1, 1)) - self.drift
        self.x += self.v
        self.t += 1
        out = not -1.0 <= self.x <= 3.0
        end = out or self.t >= STEPS
        info = {"success": not out, "failure_step": self.t - 1 if out else -1} if end else {}
        return self._obs(), 0.0, out, self.t >= STEPS and not out, info


def make_track(shifts=None):
    """The env factory a config names ('module:make_track'); shifts [['push', severity]] add a drift."""
    drift = sum(0.3 * float(sev) for name, sev in (shifts or []) if name == "push")
    return Track(drift)


class TrackExpert:
    """Steers toward x = 1 from the array observation."""

    def __init__(self, env):
        self.rng = np.random.default_rng(0)

    def reset(self, seed=None):
        self.rng = np.random.default_rng(seed)

    def act(self, obs, info):
        return np.clip([(1.0 - obs[0]) * 3 + self.rng.normal(0, 0.1)], -1, 1).astype(np.float32)


def test_collection_and_the_control_history_name_an_array_observation_alike():
    """One observation_dict: collection stores an array as 'obs' and the history reads it as 'obs'."""
    from fiper.collection import run_episode as collect_episode

    episode = collect_episode(make_track(), TrackExpert(None), seed=1)
    assert sorted(episode.data) == ["action", "obs"] and episode.data["obs"].shape == (STEPS, 2)
    arr = episode.data["obs"][3]
    assert list(observation_dict(arr)) == ["obs"] and observation_dict(arr)["obs"] is arr
    history = ObsHistory(["obs"], 2, shapes={"obs": (2,)})
    history.push(arr)
    np.testing.assert_array_equal(history.tensors("cpu")["obs"][0], [arr, arr])


def _track_pipeline(run_dir: Path, *extra: str):
    """The pipeline on Track at a tiny size, composed with ``extra`` overrides."""
    module = __name__
    tiny = ["policy.horizon=8", "policy.embed_dim=16", "policy.encoder_hidden=32", "policy.mlp_hidden=64", "policy.mlp_layers=2",
            "policy.num_inference_steps=4", "train.val_every=1000", "train.checkpoint_every=1000000", "train.progress=false"]
    with initialize_config_dir(config_dir=CONF, version_base=None):
        cfg = compose("pipeline", [
            f"run_dir={run_dir}", "task=push_t", "device=cpu", "collect.n_episodes=4", "train.checkpoint=null", "train.steps=60",
            "train.batch_size=64", "train.overrides=[" + ",".join(f"'{o}'" for o in tiny) + "]", "deploy_delta=null",
            f"env_overrides=['env.factory={module}:make_track','env.name=null','++expert={module}:TrackExpert',"
            "'++progress=false','++env.control_period_s=0.05']",  # Track declares no dt: the config states its period
            "rollouts.fit_episodes=8", "rollouts.calibration_episodes=8", "rollouts.num_samples=8",
            "rollouts.cells=[[none,[0.0]],[push,[1.0]]]", "rollouts.seeds_per_cell=4", "monitor.delta=0.3",
            "monitor.windows={rnd_oe: 2, ace: 2}",
            "monitor.scores={rnd_oe: {score: rnd_oe, train: {max_epochs: 3}}, ace: {score: ace, dims: [0]}}",
            "evaluate.deltas=[0.3]", "evaluate.split.fit=0.5", "evaluate.split.calibration=0.5",
            "evaluate.overrides=['windows=[1,episode]','progress=false','~methods.knn','~methods.rnd_a','~methods.logpzo','~methods.stac','~methods.fiper_joint',"
            "'~methods.fiper_or_joint','~methods.fiper_select','deploy_method=null']", *extra,
        ])
        return pipeline.run(cfg)


@pytest.mark.slow
def test_pipeline_runs_every_stage_on_a_box_observation_env(tmp_path):
    """collect -> train -> fit / calibration rollouts -> fit + calibrate -> stress -> evaluate, all on 'obs'."""
    run_dir = tmp_path / "run"
    report = _track_pipeline(run_dir)
    demos = EpisodeStore.open(run_dir / "demos.zarr")
    assert demos.data_keys == ["action", "obs"] and demos.read_data("obs").shape[1:] == (2,)
    monitor = load_monitor(run_dir / "monitor")
    assert monitor.calibrated and monitor.identity.sample_shape == (8, 8, 1)
    stress = EpisodeStore.open(run_dir / "stress.zarr")
    assert "obs" in stress.data_keys and stress.n_episodes == 2 * 4 and stress.attrs["control_period_s"] == 0.05
    obs, steps = stress.read_data("obs"), stress.episode_lengths
    assert obs.shape == (int(steps.sum()), 2) and np.isfinite(obs).all()
    pushed = stress.meta("shift").astype(str) == "push"
    assert not stress.meta("success")[pushed].any()  # the drift leaves the track: every pushed episode fails
    assert np.isfinite(stress.read_decisions("score/rnd_oe")).all() and not stress.read_decisions("failsafe").any()
    metrics = json.loads((run_dir / "evaluation" / "metrics.json").read_text())
    assert report.exists() and {r["method"] for r in metrics["records"]} >= {"fiper", "rnd_oe", "ace"}
    assert all(t["control_period_s"] == 0.05 for t in metrics["tasks"].values())


def test_flattened_mujoco_task_collects_and_runs_monitored(tmp_path):
    """push-T behind FlattenObservation: collected as 'obs', acted on and recorded by the control loop."""
    from policies import PolicyConfig, TrainConfig, load_policy, train_policy

    env = gym.wrappers.FlattenObservation(envs.make_env("push_t", max_episode_steps=30))
    store = EpisodeStore.create(tmp_path / "demos.zarr")
    collect(env, envs.make_expert(env), store, 2, seed=0, max_attempts=2, progress=False)
    assert store.data_keys == ["action", "obs"] and store.read_data("obs").shape[1:] == env.observation_space.shape
    cfg = PolicyConfig(kind="diffusion", denoiser="mlp", horizon=8, n_action_steps=4, embed_dim=16, encoder_hidden=32,
                       mlp_hidden=32, mlp_layers=1, num_inference_steps=4)
    train_policy(tmp_path / "demos.zarr", TrainConfig(policy=cfg, steps=5, batch_size=32, device="cpu", progress=False, cpu_threads=1,
                                                      val_every=1000, checkpoint_every=10**6, failed_demos="keep"), tmp_path / "policy")
    policy = load_policy(tmp_path / "policy")
    assert list(policy.obs_shapes) == ["obs"]
    agent = MonitoredPolicy(policy, None, num_samples=4)
    result = run_episode(env, agent, seed=3)
    RolloutRecorder(tmp_path / "rollouts.zarr").write(result.steps, result.decisions, result.labels)
    recorded = EpisodeStore.open(tmp_path / "rollouts.zarr")
    assert recorded.read_data("obs").shape == (len(result.infos), *env.observation_space.shape)
    assert len(result.decisions) == -(-len(result.infos) // policy.n_action_steps) and np.isfinite(result.steps["action"]).all()


@pytest.mark.slow
def test_pipeline_trains_on_given_demonstrations_instead_of_collecting(tmp_path, capsys):
    """collect.demos (e.g. a store launch.import_lerobot wrote): no collect stage, the policy trains on that store, and a
    changed store retrains it."""
    demos = EpisodeStore.create(tmp_path / "mine.zarr")
    collect(make_track(), TrackExpert(None), demos, 4, seed=0, progress=False)
    run_dir = tmp_path / "run"
    _track_pipeline(run_dir, f"collect.demos={tmp_path / 'mine.zarr'}")
    out = capsys.readouterr().out
    assert f"[collect] skipped: training from collect.demos={tmp_path / 'mine.zarr'}" in out
    assert not (run_dir / "demos.zarr").exists() and (run_dir / "policy" / "model.safetensors").exists()
    collect(make_track(), TrackExpert(None), EpisodeStore.open(tmp_path / "mine.zarr", mode="a"), 1, seed=9, progress=False)
    _track_pipeline(run_dir, f"collect.demos={tmp_path / 'mine.zarr'}")
    assert "[train] running" in capsys.readouterr().out  # one more demonstration: the policy is trained again


class SloppyTrack(Track):
    """Declares its position as a (1,) Box but emits a scalar, as many hand-written envs do."""

    observation_space = gym.spaces.Dict({"x": gym.spaces.Box(-10, 10, (1,), np.float32)})

    def _obs(self):
        return {"x": np.float32(self.x)}


def test_the_rollouts_check_the_policy_against_what_the_env_emits_not_its_declared_space():
    """Collection stored the scalar the env emits, so a policy trained on it reads (): the rollouts' check compares
    with a reset observation and passes, and still names a real mismatch, for dict and array observations alike."""
    from types import SimpleNamespace

    from launch.stress import check_observations

    check_observations(SimpleNamespace(obs_shapes={"x": ()}), SloppyTrack(), {"factory": "sloppy"})
    with pytest.raises(ValueError, match=r"does not emit: 'x' \(1,\) \(env: \(\)\); the env emits \{'x': \(\)\}"):
        check_observations(SimpleNamespace(obs_shapes={"x": (1,)}), SloppyTrack(), {"factory": "sloppy"})
    check_observations(SimpleNamespace(obs_shapes={"obs": (2,)}), make_track(), {"factory": "track"})
    with pytest.raises(ValueError, match=r"does not emit: 'obs' \(3,\) \(env: \(2,\)\)"):
        check_observations(SimpleNamespace(obs_shapes={"obs": (3,)}), make_track(), {"factory": "track"})
