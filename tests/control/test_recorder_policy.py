"""RolloutRecorder(policy=...) records the recording policy's weights fingerprint, so a monitor fitted from a store
recorded in one's own loop refuses a retrained policy, and the store refuses another policy's episodes."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch

from fiper.control import MonitoredPolicy, RolloutRecorder
from fiper.fingerprint import FingerprintMismatch
from fiper.monitor import load_monitor, save_monitor
from fiper.monitor.decision_data import load_decisions, successful_in_distribution
from fiper.monitor.fitting import fit_monitor
from fiper.monitor.identity import policy_fingerprint
from fiper.storage import EpisodeStore
from policies import PolicyConfig, build_policy


def _policy():
    torch.manual_seed(0)
    config = PolicyConfig(kind="diffusion", denoiser="mlp", horizon=8, n_action_steps=4, embed_dim=16, encoder_hidden=32,
                          mlp_hidden=32, mlp_layers=1, num_inference_steps=2)
    return build_policy(config, {"agent_pos": (2,)}, 2)


def _retrained(policy):
    other = copy.deepcopy(policy)
    with torch.no_grad():
        next(other.parameters()).add_(1e-3)  # same shapes, other weights
    return other


def _record(recorder, agent, episodes, steps=12):
    """One's own control loop: act on observations, append each episode with its decisions."""
    rng = np.random.default_rng(0)
    for _ in range(episodes):
        agent.reset()
        obs = rng.normal(size=(steps, 2)).astype(np.float32)
        actions = np.stack([agent.act({"agent_pos": o}) for o in obs])
        recorder.write({"agent_pos": obs, "action": actions}, agent.decisions, {"success": True, "shift": "none"})


def test_a_monitor_fitted_from_a_store_recorded_with_policy_refuses_a_retrained_policy(tmp_path):
    policy = _policy()
    agent = MonitoredPolicy(policy, None, num_samples=4)
    _record(RolloutRecorder(tmp_path / "r.zarr", attrs={"task": "mine"}, policy=agent), agent, episodes=4)
    store = EpisodeStore.open(tmp_path / "r.zarr")
    assert store.attrs["policy_fingerprint"] == policy_fingerprint(policy) and store.attrs["n_action_steps"] == 4
    data, identity = load_decisions(store, episodes=successful_in_distribution(store))
    monitor = fit_monitor(data, identity, scores={"mahalanobis": {}}, windows={"mahalanobis": 2})
    out = save_monitor(monitor, tmp_path / "monitor")
    with pytest.raises(ValueError, match="fitted for another policy"):
        load_monitor(out, policy=_retrained(policy))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # its own policy: loads without a warning
        load_monitor(out, policy=policy)


def test_a_store_recorded_with_policy_refuses_another_policys_episodes(tmp_path):
    policy = _policy()
    other = _retrained(policy)
    _record(RolloutRecorder(tmp_path / "r.zarr", policy=policy), MonitoredPolicy(policy, None, num_samples=4), episodes=1)
    with pytest.raises(FingerprintMismatch, match=r"recorded by another policy .*new store .*overwrite=true"):
        RolloutRecorder(tmp_path / "r.zarr", policy=other)
    assert EpisodeStore.open(tmp_path / "r.zarr").n_episodes == 1
    with pytest.raises(ValueError, match=r"attrs n_action_steps=8 contradict the policy given \(n_action_steps=4\)"):
        RolloutRecorder(tmp_path / "new.zarr", attrs={"n_action_steps": 8}, policy=policy)
