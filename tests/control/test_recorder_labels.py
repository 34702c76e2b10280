"""RolloutRecorder.write in one's own control loop: a failure labelled with success alone is recorded at its last step
with the reason 'terminated' (not at step -1), and a store begun with a success takes a later failure's
failure_reason instead of refusing its keys."""

from __future__ import annotations

import numpy as np
import torch

from fiper.control import MonitoredPolicy, RolloutRecorder
from fiper.storage import EpisodeStore
from policies import PolicyConfig, build_policy


def _agent():
    torch.manual_seed(0)
    config = PolicyConfig(kind="diffusion", denoiser="mlp", horizon=8, n_action_steps=4, embed_dim=16, encoder_hidden=32,
                          mlp_hidden=32, mlp_layers=1, num_inference_steps=2)
    return MonitoredPolicy(build_policy(config, {"agent_pos": (2,)}, 2), None)


def _episode(agent, steps=6):
    agent.reset()
    obs = [{"agent_pos": np.full(2, 0.01 * t, np.float32)} for t in range(steps)]
    actions = [agent.act(o) for o in obs]
    return {"agent_pos": np.stack([o["agent_pos"] for o in obs]), "action": np.stack(actions)}


def _meta(path):
    store = EpisodeStore.open(path)
    return {key: list(store.root["meta"][key][:]) for key in ("success", "failure_step", "failure_reason")}


def test_failure_labelled_with_success_alone_gets_its_last_step(tmp_path):
    agent, path = _agent(), tmp_path / "runs.zarr"
    recorder = RolloutRecorder(path, policy=agent, attrs={"task": "t", "control_period_s": 0.1})
    recorder.write(_episode(agent, 6), agent.decisions, {"success": True, "shift": "none"})
    recorder.write(_episode(agent, 9), agent.decisions, {"success": False, "shift": "none"})
    meta = _meta(path)
    assert meta["failure_step"] == [-1, 8]
    assert [str(r) for r in meta["failure_reason"]] == ["", "terminated"]


def test_failure_reason_after_a_success_is_recorded(tmp_path):
    agent, path = _agent(), tmp_path / "runs.zarr"
    recorder = RolloutRecorder(path, policy=agent, attrs={"task": "t", "control_period_s": 0.1})
    recorder.write(_episode(agent), agent.decisions, {"success": True, "shift": "none"})
    recorder.write(_episode(agent), agent.decisions,
                   {"success": False, "failure_step": 3, "failure_reason": "off_table", "shift": "none"})
    meta = _meta(path)
    assert meta["failure_step"] == [-1, 3]
    assert [str(r) for r in meta["failure_reason"]] == ["", "off_table"]
