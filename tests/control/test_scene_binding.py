"""Steering that reads the scene never steers around the previous episode's obstacles: an episode whose env was not
bound again is a fail-safe alarm naming bind_env, whichever order the loop resets and binds in."""

from __future__ import annotations

import numpy as np
import pytest

import envs
from fiper.control import MonitoredPolicy
from fiper.interventions import FallbackContext, GradedResponse, HoldPosition, KeepOut, SceneKeepOut, Steering
from pusht_policy import tiny_pusht_policy


@pytest.fixture(scope="module")
def policy():
    return tiny_pusht_policy()


def steered(policy, reward) -> MonitoredPolicy:
    steering = Steering(reward, guide_scale=2.0, position_dims=[0, 1], num_particles=4)
    return MonitoredPolicy(policy, None, response=GradedResponse(steering, fallback=HoldPosition(), start="steer"),
                           context=FallbackContext(action_dim=2, position_dims=[0, 1]), num_samples=4)


def episode(agent, env, seed: int, bind: str | None, steps: int = 6) -> list[dict]:
    """One episode; ``bind``: 'after' / 'before' agent.reset through bind_env, 'steering' through Steering.bind, None."""
    obs, _ = env.reset(seed=seed)
    if bind == "before":
        agent.bind_env(env)
    agent.reset(seed=seed)
    if bind == "after":
        agent.bind_env(env)
    if bind == "steering":
        agent.response.steering.bind(env)
    infos = []
    for _ in range(steps):
        action = agent.act(obs)
        assert np.isfinite(action).all()
        infos.append(agent.last_info)
        obs, *_ = env.step(action)
    return infos


def failsafe(infos: list[dict]) -> list[str]:
    return [i["reason"] for i in infos if i.get("failsafe")]


@pytest.mark.parametrize("order", ["after", "before", "steering"])
def test_an_episode_not_bound_again_is_a_failsafe_naming_bind_env(policy, order):
    env = envs.make_env("push_t", shifts=[("obstacle", 1.0)], max_episode_steps=40)
    agent = steered(policy, SceneKeepOut())
    assert not failsafe(episode(agent, env, 1, order))
    assert not failsafe(episode(agent, env, 2, order))  # bound again: steers around this episode's obstacle
    reasons = failsafe(stale := episode(agent, env, 3, None))
    assert reasons and "bind_env" in reasons[0] and "last episode" in reasons[0], reasons
    assert stale[-1]["fallback_active"]
    assert not failsafe(episode(agent, env, 4, order))  # binding again lifts it


def test_a_fixed_reward_needs_no_binding(policy):
    env = envs.make_env("push_t", max_episode_steps=40)
    agent = steered(policy, KeepOut(center=[0.1, 0.0], radius=0.04))
    for seed in (1, 2):
        assert not failsafe(episode(agent, env, seed, None))
