"""The action layout launch.stress and launch.act give a fallback on an env that names no position entries (a force-
driven InvertedPendulum): the error names the context settings, and a controller fallback needs none."""

from __future__ import annotations

import numpy as np
import pytest


def test_a_fallback_on_an_env_that_names_no_position_entries_says_how_to_name_them():
    """gymnasium's InvertedPendulum (a force) says nothing about positions: the error names the context settings,
    the pipeline's quoted form and the responses that need none; given position_dims, the context is built."""
    import gymnasium as gym

    from launch.stress import action_context

    env = gym.make("InvertedPendulum-v5")
    with pytest.raises(ValueError, match=r"this env's 1-d action does not say which entries are position targets.*"
                                         r"forces or torques \(declare it: context.action_mode=effort\) has no position to hold.*controller.*launch.pipeline act=null.*"
                                         r"context.position_dims=\[0,1,2\].*\"act.overrides=\['context.position_dims=\[0,1,2\]'"):
        action_context({"position_dims": None, "gripper_dims": None, "action_mode": "position"}, 1, env)
    ctx = action_context({"position_dims": [0], "gripper_dims": [], "action_mode": "velocity"}, 1, env)
    assert tuple(ctx.position_dims) == (0,) and ctx.action_mode == "velocity"


def test_a_controller_fallback_needs_no_position_entries():
    """A controller of the user's own (the fallback of a force- or torque-driven env) computes its actions itself: its
    response builds on an env that names no position entries, with no context settings, and acts with the controller."""
    from types import SimpleNamespace

    import gymnasium as gym

    from fiper.interventions import GradedResponse, HoldPosition, SafeController
    from launch.stress import action_context, uses_positions

    env = gym.make("InvertedPendulum-v5")
    brake = GradedResponse(fallback=SafeController(lambda obs: np.array([0.25])))
    assert not uses_positions(brake) and uses_positions(GradedResponse(fallback=HoldPosition()))
    assert not uses_positions(SimpleNamespace(fallback=None))  # steering alone
    unnamed = {"position_dims": None, "gripper_dims": None, "action_mode": "position"}
    ctx = action_context(unnamed, 1, env, positions=uses_positions(brake))
    assert ctx.action_dim == 1
    ctx.record(np.zeros(1))
    brake.fallback.start(ctx)
    assert brake.fallback.act({"obs": np.zeros(4)}, ctx).tolist() == [0.25]
    with pytest.raises(ValueError, match=r"does not say which entries are position targets"):
        action_context(unnamed, 1, env, positions=True)
