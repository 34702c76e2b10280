"""The monitor, the wrapper with its recorder, and steering work on DiffusersPolicy unchanged: a FailureMonitor is
fitted and calibrated on the adapter's decisions and scores new ones, a gymnasium episode is recorded through
MonitoredPolicy, and VLS steering moves the adapter's samples toward the reward."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from adapter_helpers import fiper_as_diffusers

import envs
from fiper.control import MonitoredPolicy, RolloutRecorder, run_episode
from fiper.interventions import Steering
from fiper.monitor import FailureMonitor, PolicyIdentity, load_monitor, save_monitor
from fiper.scores import ScoreFitData
from fiper.storage import EpisodeStore

B, PER_EPISODE = 8, 4
SPEC = {"scores": {"rnd_oe": {"target_widths": [16], "predictor_widths": [32, 32], "out_dim": 8, "train": {"max_epochs": 5}},
                   "ace": {}},
        "windows": {"rnd_oe": 2, "ace": 2}}


def decisions(adapter, task, episodes, seed, shift=0.0):
    """Decisions along the toy task's start region: observation histories jittered around the start, shifted by ``shift``."""
    g = torch.Generator().manual_seed(seed)
    n = episodes * PER_EPISODE
    obs = torch.as_tensor(task.start_obs(adapter.n_obs_steps, n)) + 0.05 * torch.randn(n, 1, 2, generator=g) + shift
    z = adapter.encode({"agent_pos": obs})
    samples = adapter.sample(z, B, generator=g)
    return ScoreFitData(z.numpy(), samples.numpy(), np.arange(1, episodes + 1) * PER_EPISODE, seed=seed)


@pytest.fixture(scope="module")
def adapter(toy_policy):
    return fiper_as_diffusers(toy_policy, "ddpm")


@pytest.fixture(scope="module")
def monitor(adapter, toy_policy):
    from policies.toy_data import BimodalTask

    task = BimodalTask()
    fitted = FailureMonitor.from_spec(SPEC, decisions(adapter, task, 10, 0), PolicyIdentity.of(adapter, B))
    cal = decisions(adapter, task, 20, 1)
    fitted.calibrate(fitted.score_offline(cal.embeddings, cal.samples, cal.decision_ends), cal.decision_ends, delta=0.2)
    return fitted


def test_monitor_fits_calibrates_and_scores_the_adapters_decisions(adapter, monitor, toy_policy, tmp_path):
    from policies.toy_data import BimodalTask

    task = BimodalTask()
    assert monitor.calibrated and monitor.identity.fingerprint == adapter.fingerprint()
    near, far = decisions(adapter, task, 5, 2), decisions(adapter, task, 5, 3, shift=1.5)
    raw_near = monitor.score_offline(near.embeddings, near.samples, near.decision_ends)
    raw_far = monitor.score_offline(far.embeddings, far.samples, far.decision_ends)
    for raw in (raw_near, raw_far):
        assert {k: v.shape for k, v in raw.items()} == {"rnd_oe": (20,), "ace": (20,)}
        assert all(np.isfinite(v).all() for v in raw.values())
    assert raw_far["rnd_oe"].mean() > 2 * raw_near["rnd_oe"].mean()  # observations off the training region stand out
    verdict = monitor.step(far.embeddings[0], far.samples[0])
    assert set(verdict.ratios) == {"rnd_oe", "ace"} and all(np.isfinite(list(verdict.ratios.values())))
    assert isinstance(verdict.alarm, bool)
    save_monitor(monitor, tmp_path / "monitor")
    assert load_monitor(tmp_path / "monitor", policy=adapter).calibrated
    with pytest.raises(ValueError, match="fitted for another policy"):  # same weights, another sampler: another policy
        load_monitor(tmp_path / "monitor", policy=fiper_as_diffusers(toy_policy, "ddim"))


def test_the_wrapper_and_recorder_run_the_adapter_in_a_gym_env(adapter, monitor, tmp_path):
    env = envs.make_env("push_t", max_episode_steps=24)  # emits agent_pos (2,), what the toy policy reads
    agent = MonitoredPolicy(adapter, monitor, num_samples=B, seed=0)
    recorder = RolloutRecorder(tmp_path / "rollouts.zarr", score_names=monitor.names)
    result = run_episode(env, agent, seed=0, labels={"shift": "none", "severity": 0.0})
    recorder.write(result.steps, result.decisions, result.labels)
    store = EpisodeStore.open(tmp_path / "rollouts.zarr")
    n = 24 // adapter.n_action_steps
    assert store.n_episodes == 1 and store.read_decisions("samples").shape == (n, B, adapter.horizon, 2)
    assert store.read_decisions("embedding").shape == (n, adapter.embedding_dim)
    assert np.isfinite(store.read_decisions("score/rnd_oe")).all() and not store.read_decisions("failsafe").any()
    assert np.isfinite(store.data_array("action")[:]).all() and store.data_array("action").shape == (24, 2)


def test_steering_moves_the_adapters_samples_toward_the_reward(adapter, toy_policy):
    from policies.toy_data import BimodalTask

    goal = torch.tensor([0.0, -1.2])  # below the lower arc's end
    reward = lambda traj: -(traj[:, -1, :2] - goal).norm(dim=-1)  # noqa: E731  (batch, steps, 3) -> (batch,)
    z = adapter.encode({"agent_pos": torch.as_tensor(BimodalTask().start_obs(adapter.n_obs_steps, 2))})
    free = adapter.sample(z, 16, generator=torch.Generator().manual_seed(0))
    steering = Steering(reward, num_particles=16, guide_scale=3.0, adaptive_strength=False, seed=0)
    steered = steering.steer(adapter, z, generator=torch.Generator().manual_seed(0))
    distance = lambda s: (s[..., -1, :] - goal).norm(dim=-1)  # noqa: E731
    assert steered.samples.shape == free.shape == (2, 16, adapter.horizon, 2) and torch.isfinite(steered.samples).all()
    assert distance(steered.samples).mean() < 0.7 * distance(free).mean()
    assert (distance(steered.chunk) <= distance(free).min(dim=1).values + 1e-6).all()  # the executed chunk is the best
