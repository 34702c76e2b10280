"""A robot driver that writes every observation into the same buffers (as camera and ROS drivers do) gets the
decisions of fresh arrays, and a NaN it writes there is refused without reaching the fallback's last valid one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import envs
from fiper.control import MonitoredPolicy
from fiper.control.history import ObsHistory
from fiper.interventions import FallbackContext, GradedResponse, HoldPosition
from policies import PolicyConfig, build_policy


@pytest.fixture(scope="module")
def policy():
    torch.manual_seed(0)
    cfg = PolicyConfig(kind="diffusion", denoiser="mlp", horizon=8, n_action_steps=4, embed_dim=16, encoder_hidden=32,
                       mlp_hidden=32, mlp_layers=1, num_inference_steps=4, n_obs_steps=2)
    return build_policy(cfg, {"agent_pos": (2,), "object": (4,)}, 2)


def drive(policy, reuse: bool, nan_at: int | None = None, steps: int = 14):
    """Run push-T with a held agent; ``reuse``: hand it one dict of buffers rewritten in place every step."""
    agent = MonitoredPolicy(policy, None, response=GradedResponse(fallback=HoldPosition()),
                            context=FallbackContext(action_dim=2, position_dims=[0, 1]), num_samples=4)
    env = envs.make_env("push_t", max_episode_steps=50, terminate_on_success=False, terminate_on_failure=False)
    obs, _ = env.reset(seed=3)
    agent.reset(seed=3)
    buffers = {k: np.array(v, copy=True) for k, v in obs.items()}
    actions, infos, valid = [], [], []
    for t in range(steps):
        if reuse:
            for k, v in obs.items():
                buffers[k][...] = v
            if t == nan_at:
                buffers["agent_pos"][...] = np.nan
            seen = buffers
        else:
            seen = obs
        valid.append(np.array(obs["agent_pos"], copy=True))
        actions.append(agent.act(seen))
        infos.append(agent.last_info)
        obs, *_ = env.step(actions[-1])
    return agent, np.array(actions), infos, valid


def test_the_history_keeps_copies_not_the_callers_buffers():
    h = ObsHistory(["pos"], 2)
    buf = {"pos": np.array([1.0, 2.0])}
    h.push(buf)
    buf["pos"][...] = [3.0, 4.0]
    h.push(buf)
    np.testing.assert_array_equal(h.tensors(torch.device("cpu"))["pos"][0], [[1, 2], [3, 4]])


def test_reused_buffers_give_the_decisions_of_fresh_arrays(policy):
    fresh, a_fresh, _, _ = drive(policy, reuse=False)
    reused, a_reused, _, _ = drive(policy, reuse=True)
    z_fresh = np.stack([d.embedding for d in fresh.decisions])
    z_reused = np.stack([d.embedding for d in reused.decisions])
    np.testing.assert_array_equal(z_reused, z_fresh)
    np.testing.assert_array_equal(a_reused, a_fresh)


def test_a_nan_written_into_a_reused_buffer_is_held_at_the_last_valid_position(policy):
    agent, actions, infos, valid = drive(policy, reuse=True, nan_at=6)
    assert infos[6]["failsafe"] and "NaN or inf" in infos[6]["reason"], infos[6]
    assert np.isfinite(actions).all()
    for a in actions[6:]:  # the hold latched the position measured at step 5, the newest that passed the checks
        np.testing.assert_allclose(a, valid[5], rtol=0, atol=1e-6)
