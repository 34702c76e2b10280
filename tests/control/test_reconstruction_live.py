"""A monitor of the camera reconstruction alone runs live in MuJoCo beside a low-dim policy: the wrapper hands it the
camera frame the env gave, the live scores equal the offline re-scoring of the frames the recorder kept, and an
obstacle in view alarms at the first decision where no nominal scene does."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np

import envs
from fiper.control import MonitoredPolicy, RolloutRecorder, run_episode
from fiper.monitor import FailureMonitor, PolicyIdentity
from fiper.scores import ScoreFitData
from fiper.storage import EpisodeStore
from policies import load_policy

B, MAX_STEPS = 4, 24
CHECKPOINT = Path(__file__).parents[2] / "launch/checkpoints/pick_place_diffusion_mlp"  # the shipped pick-and-place policy
SPEC = {"scores": {"rec": {"score": "reconstruction", "image_size": 32, "widths": [8, 8, 8], "latent": 16,
                           "train": {"lr": 3e-3, "max_epochs": 60, "patience": 10}}},
        "windows": {"rec": 1}, "rule": "single"}


class Camera(gym.ObservationWrapper):
    """The scene camera's frame beside the low-dim observation the policy reads (a user's extra camera)."""

    def observation(self, obs):
        return {**obs, "camera": self.env.render()}


def make_env(shifts=None):
    return Camera(envs.make_env("pick_place", shifts=shifts, max_episode_steps=MAX_STEPS, render_mode="rgb_array", render_size=64))


def _frames(store, episodes=None) -> ScoreFitData:
    return ScoreFitData.from_store(store, episodes=episodes, samples=False, embeddings=False, observations=True)


def test_a_reconstruction_monitor_runs_live_beside_a_low_dim_policy(tmp_path):
    policy = load_policy(CHECKPOINT)
    keys = [*policy.obs_shapes, "camera"]
    recorder, bare, env = RolloutRecorder(tmp_path / "id.zarr", attrs={"task": "pick_place"}), MonitoredPolicy(policy, None, num_samples=B), make_env()
    for seed in range(24):
        result = run_episode(env, bare, seed=seed, record_keys=keys)
        recorder.write(result.steps, result.decisions, result.labels)
    store = EpisodeStore.open(tmp_path / "id.zarr")
    monitor = FailureMonitor.from_spec(SPEC, _frames(store, range(18)), PolicyIdentity.of(policy, B))
    assert monitor.needs == {"observation"} and monitor.scores["rec"].config["keys"] == ["camera"]  # the image, not the vectors
    cal = _frames(store, range(18, 24))
    monitor.calibrate(monitor.score_offline(None, None, cal.decision_ends, observations=cal.observations), cal.decision_ends,
                      delta=0.25)
    agent = MonitoredPolicy(policy, monitor, num_samples=B)
    live = RolloutRecorder(tmp_path / "live.zarr", score_names=monitor.names, attrs={"task": "pick_place"})
    result = run_episode(env, agent, seed=100)
    live.write(result.steps, result.decisions, result.labels)
    assert len(result.decisions) >= 3 and not any(d.verdict.failsafe for d in result.decisions)
    recorded_live = EpisodeStore.open(tmp_path / "live.zarr")
    assert "camera" in recorded_live.data_keys  # kept by default: the monitor reads it
    data = _frames(recorded_live)
    offline = monitor.score_offline(None, None, data.decision_ends, observations=data.observations)["rec"]
    np.testing.assert_allclose(recorded_live.read_decisions("score/rec"), offline, rtol=1e-5, atol=1e-7)
    assert np.ptp(offline) > 0

    first = []  # each episode's first decision: nominal scenes against one with the obstacle in view
    for shifts, seeds in ((None, range(200, 206)), ([("obstacle", 1.0)], range(200, 203))):
        shifted = make_env(shifts)
        for seed in seeds:
            obs, _ = shifted.reset(seed=seed)
            agent.reset(seed=seed)
            agent.act(obs)
            assert not agent.last_info["failsafe"]
            first.append((shifts is not None, agent.last_info["ratios"]["rec"]))  # score over its threshold
    nominal, obstacle = [r for o, r in first if not o], [r for o, r in first if o]
    assert max(nominal) < 1 and sum(r > 1 for r in obstacle) >= 2, first  # measured: nominal 0.84-0.93, obstacle 0.98-1.20
    assert np.mean(obstacle) > max(nominal)
