"""load_decisions for a library user: every episode read from a labelled store, and the policy's fingerprint."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from benchmarks.synthetic_stores import SyntheticTask, write_synthetic_store
from fiper.monitor import load_monitor, save_monitor
from fiper.monitor.decision_data import load_decisions, successful_in_distribution
from fiper.monitor.fitting import fit_monitor

TASK = SyntheticTask()


class _Policy:
    """The shapes of the synthetic task's policy and weights of its own (a fingerprint)."""

    def __init__(self, seed: int):
        torch.manual_seed(seed)
        self.net = torch.nn.Linear(2, 2)
        self.embedding_dim, self.horizon, self.action_dim = TASK.embedding_dim, TASK.horizon, TASK.action_dim
        self.n_action_steps = TASK.n_action_steps


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_synthetic_store(tmp_path_factory.mktemp("s") / "r.zarr", TASK, seed=0, n_success_id=12, n_success_ood=3,
                                 n_fail_id=2, n_fail_ood=1)


def test_reading_every_episode_of_a_store_with_failures_warns_counting_them(store):
    with pytest.warns(UserWarning, match=r"all 18 episodes .* 3 failed and 4 shifted .* episodes=successful_in_distribution"):
        data, _ = load_decisions(store)
    assert len(data.decision_ends) == 18
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data, _ = load_decisions(store, episodes=successful_in_distribution(store))
    assert len(data.decision_ends) == 12


def _save(store, path, **given):
    data, identity = load_decisions(store, episodes=successful_in_distribution(store), **given)
    monitor = fit_monitor(data, identity, scores={"mahalanobis": {}}, windows={"mahalanobis": 2})
    monitor.calibrate(monitor.score_offline(data.embeddings, None, data.decision_ends), data.decision_ends, delta=0.1)
    save_monitor(monitor, path)
    return monitor


def test_a_monitor_fitted_with_policy_given_refuses_other_weights(store, tmp_path):
    """policy= records the fingerprint: another policy of the same shapes is refused; without it, a warning names the fix."""
    fitted = _save(store, tmp_path / "with", policy=_Policy(0))
    assert fitted.identity.fingerprint is not None
    with pytest.raises(ValueError, match="fitted for another policy"):
        load_monitor(tmp_path / "with", policy=_Policy(1))
    assert load_monitor(tmp_path / "with", policy=_Policy(0)).delta == 0.1
    assert _save(store, tmp_path / "without").identity.fingerprint is None
    with pytest.warns(UserWarning, match=r"load_decisions\(store, episodes=\.\.\., policy=policy\) before fit_monitor"):
        load_monitor(tmp_path / "without", policy=_Policy(1))
    np.testing.assert_equal(load_monitor(tmp_path / "without").identity.embedding_dim, TASK.embedding_dim)


def test_a_replayed_policy_draws_the_default_b_unless_launch_fit_sets_num_samples(tmp_path):
    """One definition of B for a replay: load_decisions' DEFAULT_NUM_SAMPLES, which launch.fit uses when neither
    num_samples= nor a monitor file sets it."""
    from pathlib import Path

    from hydra import compose, initialize_config_dir

    from fiper.monitor.decision_data import DEFAULT_NUM_SAMPLES
    from fiper.storage import EpisodeStore
    from launch import fit
    from policies import PolicyConfig, build_policy

    torch.manual_seed(0)
    policy = build_policy(PolicyConfig(denoiser="mlp", horizon=8, n_action_steps=4, embed_dim=8, encoder_hidden=16,
                                       mlp_hidden=16, mlp_layers=1, num_inference_steps=2), {"state": (3,)}, 2)
    policy.save(tmp_path / "policy")
    demos = EpisodeStore.open_or_create(tmp_path / "demos.zarr")
    rng = np.random.default_rng(0)
    for _ in range(3):
        demos.append_episode({"state": rng.normal(size=(8, 3)).astype(np.float32), "action": rng.normal(size=(8, 2)).astype(np.float32)})
    data, identity = load_decisions(demos, episodes=np.arange(3), policy=policy, progress=False)
    assert DEFAULT_NUM_SAMPLES == 32 and data.samples.shape[1] == identity.num_samples == DEFAULT_NUM_SAMPLES
    from fiper.control import MonitoredPolicy
    assert MonitoredPolicy(policy, None).num_samples == DEFAULT_NUM_SAMPLES  # a policy run without a monitor draws the same B
    conf = str(Path(__file__).resolve().parents[2] / "launch" / "conf")
    small = ["monitor.scores.rnd_oe.train={max_epochs: 1}", "device=cpu", "progress=false", f"policy_dir={tmp_path / 'policy'}",
             f"data={demos.path}"]
    with initialize_config_dir(config_dir=conf, version_base=None):
        assert fit.run(compose(config_name="fit", overrides=[*small, f"out={tmp_path / 'm1'}"])).identity.num_samples == 32
        assert fit.run(compose(config_name="fit", overrides=[*small, f"out={tmp_path / 'm2'}", "num_samples=4"])).identity.num_samples == 4
