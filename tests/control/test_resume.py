"""``MonitoredPolicy.resume()`` hands control back to the policy mid-episode and keeps the response's record of it."""

from __future__ import annotations

import numpy as np
import torch

import envs
from calibration import Threshold
from fiper.control import MonitoredPolicy
from fiper.interventions import FallbackContext, GradedResponse, HoldPosition
from fiper.monitor import PolicyIdentity
from fiper.monitor.fitting import fit_monitor
from fiper.scores import ScoreFitData
from pusht_policy import tiny_pusht_policy

B, K = 8, 4  # samples per decision, n_action_steps


def agent_alarming_from(decision: int, response: GradedResponse | None = None) -> MonitoredPolicy:
    """A small untrained push-T policy whose ACE monitor alarms at every decision from ``decision`` on, and a hold."""
    policy = tiny_pusht_policy()
    g = torch.Generator().manual_seed(0)
    obs = {k: torch.randn(24, policy.n_obs_steps, *s, generator=g) for k, s in policy.obs_shapes.items()}
    with torch.no_grad():
        z = policy.encode(obs)
        samples = policy.sample(z, B, generator=g)
    monitor = fit_monitor(ScoreFitData(z.numpy(), samples.numpy(), np.array([12, 24])), PolicyIdentity.of(policy, B),
                          scores={"ace": {"score": "ace"}}, windows={"ace": 1}, rule="single")
    monitor.set_thresholds({"ace": Threshold("time_varying", 0.1, np.r_[np.full(decision, 1e12), -1e12], 10, False)})
    return MonitoredPolicy(policy, monitor, response=response or GradedResponse(fallback=HoldPosition()),
                           context=FallbackContext(action_dim=2, position_dims=[0, 1]), num_samples=B)


def test_resume_keeps_the_labels_the_episode_recorded_so_far():
    agent = agent_alarming_from(2)
    env = envs.make_env("push_t", max_episode_steps=100, terminate_on_success=False, terminate_on_failure=False)
    obs, _ = env.reset(seed=0)
    agent.reset(seed=0)
    for t in range(3 * K):  # decisions 0, 1 plain, decision 2 alarms: the hold acts from env step 2K on
        if t == 2 * K + 2:
            assert agent.fallback_active and agent.response.labels == ["none", "none", "fallback:hold"]
            agent.resume()  # back to the policy: decision 3 (at this step) alarms again
        obs, *_ = env.step(agent.act(obs))
    assert agent.response.labels == ["none", "none", "fallback:hold", "fallback:hold"]
    assert agent.response.labels == [d.intervention for d in agent.decisions]
    assert [d.env_step for d in agent.decisions] == [0, K, 2 * K, 2 * K + 2]


class Logged(GradedResponse):
    """A response of one's own with a record of its own (``events``) besides ``labels``, and a stray list it never resets."""

    def reset(self):
        super().reset()
        self.events = []

    def step(self, alarm, ratio):
        label = super().step(alarm, ratio)
        self.events.append(f"{label} at {ratio:.0f}")
        return label


def test_resume_keeps_a_responses_own_record_and_copies_nothing_it_did_not_reset():
    response = Logged(fallback=HoldPosition())
    agent = agent_alarming_from(1, response)
    env = envs.make_env("push_t", max_episode_steps=100, terminate_on_success=False, terminate_on_failure=False)
    obs, _ = env.reset(seed=0)
    agent.reset(seed=0)
    response.notes = ["kept as it is"]  # not a record reset() renews: resume must not double it
    for t in range(2 * K):
        if t == K + 1:
            agent.resume()
        obs, *_ = env.step(agent.act(obs))
    assert [e.split(" at ")[0] for e in response.events] == response.labels == ["none", "fallback:hold", "fallback:hold"]
    assert response.notes == ["kept as it is"]
