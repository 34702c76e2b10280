"""MonitoredPolicy starts a velocity steering's paths at the position measured in the decision's observation and
integrates them over the context's control period; without either it refuses before anything runs. Position steering
reads neither: its decisions are the same bit for bit whatever the context says of periods."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fiper.control import MonitoredPolicy
from fiper.interventions import FallbackContext, GradedResponse, HoldPosition, KeepOut, Steering
from fiper.interventions.velocity_path import VelocityFrame
from pusht_policy import tiny_pusht_policy

OBS = {"agent_pos": np.array([0.2, 0.3]), "object": np.zeros(4)}


@pytest.fixture(scope="module")
def policy():
    return tiny_pusht_policy()


def agent(policy, reward, context, velocity=True) -> MonitoredPolicy:
    steering = Steering(reward, guide_scale=2.0, position_dims=[0, 1], num_particles=4, velocity_actions=velocity)
    return MonitoredPolicy(policy, None, response=GradedResponse(steering, fallback=HoldPosition(), start="steer"),
                           context=context, num_samples=4)


@pytest.mark.parametrize("scale", [1.0, 0.25])  # 0.25: an action unit commands 0.25 position units per second (gym-hil)
def test_the_paths_start_at_the_measured_position_and_step_by_the_control_period(policy, scale):
    seen = []

    def reward(trajectory):
        seen.append(trajectory.detach().clone())
        return -(trajectory ** 2).sum((1, 2))

    context = FallbackContext(2, [0, 1], action_mode="velocity", control_period_s=0.05, velocity_scale=scale)
    steered = agent(policy, reward, context)
    steered.act(OBS)
    decision = steered.decisions[-1]
    assert seen  # start='steer': the decision's batch was sampled with steering (no monitor labels it)
    samples = torch.as_tensor(decision.samples)  # (B, H, A): the batch the last reward call scored
    expected = torch.tensor([0.2, 0.3]) + 0.05 * scale * samples.cumsum(1)
    torch.testing.assert_close(seen[-1][..., :2], expected, rtol=1e-5, atol=1e-6)
    assert torch.all(seen[-1][..., 2] == 0)


def test_a_velocity_steering_without_a_period_or_a_measured_position_is_refused_at_construction(policy):
    with pytest.raises(ValueError, match=r"the response's steering.velocity_actions=true .* lacks the seconds per env step"):
        agent(policy, KeepOut([0.0, 0.0], 0.1), FallbackContext(2, [0, 1], action_mode="velocity"))
    with pytest.raises(ValueError, match=r"lacks the observation key measuring the position \(context.agent_pos_key"):
        agent(policy, KeepOut([0.0, 0.0], 0.1), FallbackContext(2, [0, 1], action_mode="velocity", agent_pos_key=None,
                                                                control_period_s=0.05))


def test_position_steering_is_the_same_bit_for_bit_whatever_the_context_says_of_periods(policy):
    runs = []
    for period in (None, 0.05):
        steered = agent(policy, KeepOut([0.1, 0.1], 0.1), FallbackContext(2, [0, 1], control_period_s=period), velocity=False)
        actions = [steered.act(OBS) for _ in range(5)]
        runs.append((np.stack(actions), steered.decisions[0].samples))
    assert np.array_equal(runs[0][0], runs[1][0]) and np.array_equal(runs[0][1], runs[1][1])
    steering = Steering(KeepOut([0.1, 0.1], 0.1), position_dims=[0, 1], num_particles=4, seed=0)
    z = policy.encode({"agent_pos": torch.zeros(1, policy.n_obs_steps, 2), "object": torch.zeros(1, policy.n_obs_steps, 4)})
    plain = steering.steer(policy, z, generator=torch.Generator().manual_seed(0))
    steering.reset()
    framed = steering.steer(policy, z, generator=torch.Generator().manual_seed(0),
                            frame=VelocityFrame(torch.tensor([[5.0, 5.0]]), 0.05))  # a frame position actions ignore
    assert all(torch.equal(a, b) for a, b in zip(plain, framed))


def test_steering_from_the_start_without_a_monitor_executes_the_best_particle_and_says_so(policy):
    reward = KeepOut([0.0, 0.0], 0.3)
    steered = agent(policy, reward, FallbackContext(2, [0, 1]), velocity=False)
    for _ in range(3):
        steered.act(OBS)
    for decision in steered.decisions:
        assert decision.intervention == "steer" and decision.steered
        rewards = reward(torch.nn.functional.pad(torch.as_tensor(decision.samples[..., :2]), (0, 1)))
        best = decision.samples[int(torch.argmax(rewards))]
        np.testing.assert_allclose(decision.executed, best, rtol=1e-5, atol=1e-6)


def test_a_velocity_scale_that_is_no_positive_number_is_refused_naming_its_meaning():
    for bad in (0.0, -1.0, float("inf"), True, "fast"):
        with pytest.raises(ValueError, match=r"velocity_scale=.* is invalid: the velocity, in the positions' units per second, "
                                             r"that one unit of a velocity action commands"):
            FallbackContext(2, [0, 1], action_mode="velocity", control_period_s=0.05, velocity_scale=bad)
    assert FallbackContext(2, [0, 1], control_period_s=0.1, velocity_scale=0.25).velocity_step == pytest.approx(0.025)
    assert FallbackContext(2, [0, 1]).velocity_step is None  # no period: unknown
