"""A monitor records the weights fingerprint of the policy it was fitted for; loading it for another
policy of the same shapes is refused unless allow_other_policy=True; older files without the
fingerprint still load, with a warning."""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from calibration import Threshold
from fiper.monitor import PolicyIdentity, load_monitor, save_monitor
from fiper.monitor.fitting import fit_monitor
from fiper.monitor.identity import policy_fingerprint
from fiper.scores.base import ScoreFitData
from policies import load_policy

CHECKPOINT = Path(__file__).resolve().parents[2] / "launch" / "checkpoints" / "pick_place_diffusion_mlp"
B = 4


@pytest.fixture(scope="module")
def policy():
    return load_policy(CHECKPOINT)


@pytest.fixture(scope="module")
def saved(policy, tmp_path_factory):
    rng = np.random.default_rng(0)
    n = 30
    data = ScoreFitData(rng.normal(size=(n, policy.embedding_dim)).astype(np.float32),
                        rng.normal(size=(n, B, policy.horizon, policy.action_dim)).astype(np.float32), np.array([10, 20, 30]))
    monitor = fit_monitor(data, PolicyIdentity.of(policy, B), scores={"ace": {"score": "ace"}}, windows={"ace": 1}, rule="single")
    monitor.set_thresholds({"ace": Threshold("constant", 0.2, [1.0], 10, True)})
    return save_monitor(monitor, tmp_path_factory.mktemp("mon") / "monitor")


def _retrained(policy):
    other = copy.deepcopy(policy)
    with torch.no_grad():
        next(other.parameters()).add_(1e-3)  # same shapes, other weights
    return other


def test_fingerprint_is_the_weights(policy):
    fp = policy_fingerprint(policy)
    assert len(fp) == 64 and fp == policy_fingerprint(load_policy(CHECKPOINT))
    assert policy_fingerprint(_retrained(policy)) != fp

    class Adapter:  # a policy from another stack offering its own fingerprint
        def fingerprint(self):
            return "my-model-v3"

    assert policy_fingerprint(Adapter()) == "my-model-v3"
    assert policy_fingerprint(object()) is None  # neither: only shapes can be checked


def test_an_adapter_holding_torch_modules_is_fingerprinted_by_their_weights(policy):
    """An adapter that is no nn.Module and offers no fingerprint() (the docs' example adapters) is identified by
    the modules and tensors it holds, so a retrained model is told apart from the one a store or monitor records."""

    class Adapter:
        def __init__(self, net, scale):
            self.net, self.scale, self.horizon = net, scale, 8

    fp = policy_fingerprint(Adapter(policy, torch.ones(2)))
    assert len(fp) == 64 and fp == policy_fingerprint(Adapter(load_policy(CHECKPOINT), torch.ones(2)))
    assert policy_fingerprint(Adapter(_retrained(policy), torch.ones(2))) != fp
    assert policy_fingerprint(Adapter(policy, torch.full((2,), 2.0))) != fp  # e.g. the action normaliser's stats


def test_a_wrapper_around_an_adapter_is_fingerprinted_by_the_policy_it_holds(policy):
    """A user's wrapper (self.policy = <adapter>, no fingerprint() of its own) is told apart by the weights of the
    policy it wraps, instead of recording no fingerprint at all."""

    class Adapter:
        def __init__(self, net):
            self.net = net

        def sample(self, *args, **kwargs):
            raise NotImplementedError

    class Wrapper:
        def __init__(self, inner):
            self.policy, self.name = inner, "mine"

        def sample(self, *args, **kwargs):
            return self.policy.sample(*args, **kwargs)

    fp = policy_fingerprint(Wrapper(Adapter(policy)))
    assert len(fp) == 64 and fp == policy_fingerprint(Wrapper(Adapter(load_policy(CHECKPOINT))))
    assert policy_fingerprint(Wrapper(Adapter(_retrained(policy)))) != fp
    assert policy_fingerprint(Wrapper(Wrapper(Adapter(policy)))) not in (None, fp)  # one more layer: still the weights
    assert policy_fingerprint(Wrapper(object())) is None  # holds no policy: nothing to check


def test_other_policy_is_refused_unless_allowed(policy, saved):
    assert json.loads((saved / "monitor.json").read_text())["identity"]["fingerprint"] == policy_fingerprint(policy)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_monitor(saved, policy=policy).calibrated  # its own policy: no warning
    other = _retrained(policy)
    with pytest.raises(ValueError, match=r"fitted for another policy .* with the same shapes.*launch.fit.*allow_other_policy=True"):
        load_monitor(saved, policy=other)
    assert load_monitor(saved, policy=other, allow_other_policy=True).calibrated


def test_monitored_policy_refuses_another_policy_unless_allowed(policy, saved):
    """A monitor loaded with allow_other_policy=True wraps that policy in the control loop only when MonitoredPolicy is
    told so too, as the refusal says."""
    from fiper.control import MonitoredPolicy

    other = _retrained(policy)
    monitor = load_monitor(saved, policy=other, allow_other_policy=True)
    with pytest.raises(ValueError, match=r"fitted for another policy .*allow_other_policy=True"):
        MonitoredPolicy(other, monitor)
    assert MonitoredPolicy(other, monitor, allow_other_policy=True).monitor is monitor


def test_file_without_fingerprint_loads_with_a_warning(policy, saved, tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    config = json.loads((saved / "monitor.json").read_text())
    del config["identity"]["fingerprint"]
    config.pop("fit_data", None)
    (old / "monitor.json").write_text(json.dumps(config))
    (old / "scores.safetensors").write_bytes((saved / "scores.safetensors").read_bytes())
    with pytest.warns(UserWarning, match="records no policy fingerprint.*only its shapes"):
        monitor = load_monitor(old, policy=_retrained(policy))
    assert monitor.calibrated and monitor.identity.fingerprint is None


def test_monitor_fitted_from_recorded_rollouts_knows_the_recording_policy(policy, tmp_path):
    """launch.stress records the policy's fingerprint with its rollouts; a monitor fitted on them without the policy
    (launch.fit without policy_dir=) takes it from there."""
    from hydra import compose, initialize_config_dir

    from fiper.monitor.decision_data import load_decisions
    from fiper.storage import EpisodeStore
    from launch import stress

    rollouts = tmp_path / "rollouts.zarr"
    with initialize_config_dir(config_dir=str(CHECKPOINT.parents[1] / "conf"), version_base=None):
        stress.run(compose(config_name="stress", overrides=[
            "env=pick_place", "+env.kwargs.max_episode_steps=16", f"policy_dir={CHECKPOINT}", "num_samples=2", "device=cpu",
            "cells=[[none,[0.0]]]", "seeds.start=0", "seeds.count=2", "progress=false", f"out={rollouts}"]))
    store = EpisodeStore.open(rollouts)
    data, identity = load_decisions(store)
    assert identity.fingerprint == policy_fingerprint(policy)
    monitor = fit_monitor(data, identity, scores={"ace": {"score": "ace"}}, windows={"ace": 1}, rule="single")
    out = save_monitor(monitor, tmp_path / "monitor")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_monitor(out, policy=policy)
    with pytest.raises(ValueError, match="fitted for another policy"):
        load_monitor(out, policy=_retrained(policy))
    with pytest.raises(ValueError, match="decisions recorded by another policy") as refused:
        load_decisions(store, policy=_retrained(policy), num_samples=2)
    assert "policy_dir= / policy_factory=" in str(refused.value)  # both ways of giving the policy are named
