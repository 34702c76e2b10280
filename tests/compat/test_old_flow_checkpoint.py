"""A flow checkpoint saved before flow policies clipped their chunks samples as it did then (unclipped), with a warning
naming how to opt in; one saved now clips."""

from __future__ import annotations

import json

import pytest
import torch

from policies import build_policy, load_policy
from policies.toy_data import toy_policy_config


def _chunks(policy) -> torch.Tensor:
    obs = {"agent_pos": torch.zeros(2, policy.n_obs_steps, 2)}
    with torch.no_grad():
        return policy.sample(policy.encode(obs), 8, generator=torch.Generator().manual_seed(0))


def test_an_old_flow_checkpoint_samples_unclipped_as_it_did_and_a_new_one_clips(tmp_path):
    torch.manual_seed(0)
    policy = build_policy(toy_policy_config("flow", "mlp"), {"agent_pos": (2,)}, 2)  # identity normaliser: [-1, 1] is the range
    new_dir = policy.save(tmp_path / "new")
    assert json.loads((new_dir / "config.json").read_text())["flow_clip"] == "result"
    assert float(_chunks(load_policy(new_dir, device="cpu")).abs().max()) <= 1.0
    old_dir = policy.save(tmp_path / "old")
    meta = json.loads((old_dir / "config.json").read_text())
    del meta["flow_clip"]  # the layout earlier versions wrote
    (old_dir / "config.json").write_text(json.dumps(meta))
    policy.config.clip_sample = False
    unclipped = _chunks(policy.eval())
    assert float(unclipped.abs().max()) > 1.5  # an untrained flow leaves the range: clipping would change these chunks
    with pytest.warns(UserWarning, match=r"saved before flow policies clipped .*clip_sample=False .*policy.config.clip_sample = True"):
        old = load_policy(old_dir, device="cpu")
    assert old.config.clip_sample is False and torch.equal(_chunks(old), unclipped)
    old.save(old_dir)  # saving it again keeps how it samples
    assert json.loads((old_dir / "config.json").read_text())["policy"]["clip_sample"] is False
