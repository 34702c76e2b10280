"""A fallback's measured position from a flat observation: context.agent_pos_key / agent_pos_dims, checked against the
env before anything runs, and a note when there is none (a hold then commands the last target, not where the robot is)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from fiper.interventions import FallbackContext, make_fallback
from launch.stress import action_context, measured_position_note, store_fingerprint


class FlatPointEnv(gym.Env):
    """A point driven by absolute (x, y) targets that it reaches only halfway per step; obs = [x, y, goal_x, goal_y]."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

    def reset(self, *, seed=None, options=None):
        self.pos = np.zeros(2)
        return self._obs(), {}

    def _obs(self):
        return np.array([*self.pos, 0.5, 0.5], np.float32)

    def step(self, action):
        self.pos = self.pos + 0.5 * (np.asarray(action, float) - self.pos)
        return self._obs(), 0.0, False, False, {}


LAYOUT = {"position_dims": [0, 1], "gripper_dims": None, "action_mode": "position"}


def test_a_flat_observation_named_as_the_measured_position_makes_hold_hold_where_the_robot_is():
    env = FlatPointEnv()
    ctx = action_context({**LAYOUT, "agent_pos_key": "obs", "agent_pos_dims": [0, 1]}, 2, env)
    obs, _ = env.reset(seed=0)
    for _ in range(2):  # the robot lags: after two steps toward (0.4, -0.2) it is at (0.3, -0.15)
        ctx.record([0.4, -0.2], {"obs": obs})
        obs = env.step([0.4, -0.2])[0]
    hold = make_fallback("hold")
    hold.start(ctx)
    np.testing.assert_allclose(hold.act({"obs": obs}, ctx), [0.3, -0.15], atol=1e-6)
    blind = action_context(dict(LAYOUT), 2, env)  # no key named: the last commanded target, 0.1 m further
    for _ in range(2):
        blind.record([0.4, -0.2], {"obs": obs})
    hold.start(blind)
    np.testing.assert_allclose(hold.act({"obs": obs}, blind), [0.4, -0.2])


def test_without_a_measured_position_the_sweep_says_what_hold_will_do_and_how_to_name_it(capsys):
    action_context(dict(LAYOUT), 2, FlatPointEnv())
    out = capsys.readouterr().out
    assert "no measured position" in out and "context.agent_pos_key=obs context.agent_pos_dims=[0, 1]" in out
    action_context({**LAYOUT, "action_mode": "velocity"}, 2, FlatPointEnv())  # a zero velocity needs no position
    action_context({**LAYOUT, "agent_pos_key": "obs"}, 2, FlatPointEnv())
    assert capsys.readouterr().out == ""


def test_a_named_key_the_env_lacks_or_entries_past_it_are_refused_naming_the_keys():
    with pytest.raises(ValueError, match=r"agent_pos_key='agent_pos' is not a key of the env's observation \{'obs': \(4,\)\}"):
        action_context({**LAYOUT, "agent_pos_key": "agent_pos"}, 2, FlatPointEnv())
    with pytest.raises(ValueError, match=r"context.agent_pos_dims: .*agent_pos_dims=\[3, 4\] index past"):
        action_context({**LAYOUT, "agent_pos_key": "obs", "agent_pos_dims": [3, 4]}, 2, FlatPointEnv())
    ctx = FallbackContext(2, [0, 1], agent_pos_key="obs")
    assert measured_position_note(ctx, {"obs": np.zeros(4)}, named=True) is None


class ArmStateEnv(FlatPointEnv):
    """lerobot's gym-hil layout: a default-named ``agent_pos`` of 18 entries, joint angles first, the hand's x, y, z last."""

    observation_space = gym.spaces.Dict({"agent_pos": gym.spaces.Box(-9.0, 9.0, (18,), np.float32)})

    def _obs(self):
        return {"agent_pos": np.zeros(18, np.float32)}


def test_a_default_agent_pos_longer_than_the_positions_gets_a_note_naming_agent_pos_dims(capsys):
    layout = {**LAYOUT, "position_dims": [0, 1, 2]}
    action_context(layout, 4, ArmStateEnv())  # its first 3 entries are read as the hand's position, silently before
    out = capsys.readouterr().out
    assert "the first 3 of the 18 entries of obs['agent_pos']" in out and "context.agent_pos_dims=[...]" in out
    action_context({**layout, "agent_pos_dims": [15, 16, 17]}, 4, ArmStateEnv())
    action_context({**layout, "action_mode": "velocity"}, 4, ArmStateEnv())  # a zero velocity reads no position
    assert capsys.readouterr().out == ""
    fipers_layout = FallbackContext(4, [0, 1, 2], gripper_dims=[3])  # pick_place: agent_pos = x, y, z, gripper
    assert measured_position_note(fipers_layout, {"agent_pos": np.zeros(4)}, named=False) is None


def test_unset_measured_position_settings_leave_a_store_fingerprint_as_it_was():
    from omegaconf import OmegaConf

    base = {"policy_dir": None, "policy_factory": "m:f", "monitor_dir": None, "env": {}, "factories": {}, "execute": "first",
            "response": {"kind": "hold"}, "record_keys": None}
    old = OmegaConf.create({**base, "context": dict(LAYOUT)})
    new = OmegaConf.create({**base, "context": {**LAYOUT, "agent_pos_key": None, "agent_pos_dims": None, "velocity_scale": None}})
    named = OmegaConf.create({**base, "context": {**LAYOUT, "agent_pos_key": "obs", "agent_pos_dims": None}})
    scaled = OmegaConf.create({**base, "context": {**LAYOUT, "velocity_scale": 0.25}})
    assert store_fingerprint(new, 16)["digest"] == store_fingerprint(old, 16)["digest"]
    assert store_fingerprint(named, 16)["digest"] != store_fingerprint(old, 16)["digest"]
    assert store_fingerprint(scaled, 16)["values"]["context.velocity_scale"] == 0.25
    assert store_fingerprint(old, 16)["values"]["intervention.kind"] == "hold"  # the name recorded stores hold it under


def test_the_note_is_said_once_when_asked_to_be_quiet(capsys):
    action_context(dict(LAYOUT), 2, FlatPointEnv(), quiet=True)
    assert capsys.readouterr().out == ""


def test_a_non_finite_measured_position_the_policy_does_not_read_is_a_failsafe_held_at_the_last_valid_one():
    """The fallback's position key may be one the policy never reads: a NaN there is a fault, not a NaN hold."""
    import envs
    from fiper.control import MonitoredPolicy
    from fiper.interventions import GradedResponse, HoldPosition
    from pusht_policy import tiny_pusht_policy

    policy = tiny_pusht_policy({"object": (4,)})  # reads the object only; the hold reads agent_pos
    agent = MonitoredPolicy(policy, None, response=GradedResponse(fallback=HoldPosition()),
                            context=FallbackContext(2, [0, 1], agent_pos_key="agent_pos"), num_samples=4)
    env = envs.make_env("push_t", max_episode_steps=40, terminate_on_success=False, terminate_on_failure=False)
    obs, _ = env.reset(seed=0)
    agent.reset(seed=0)
    positions, actions = [], []
    for t in range(10):
        positions.append(obs["agent_pos"].copy())
        actions.append(agent.act({**obs, "agent_pos": np.full(2, np.nan)} if t == 6 else obs))
        if t == 6:
            info = agent.last_info
            assert info["failsafe"] and "non-finite measured position" in info["reason"], info
        obs = env.step(actions[-1])[0]
    assert np.isfinite(actions).all()
    for a in actions[6:]:
        np.testing.assert_allclose(a, positions[5], atol=1e-6)
