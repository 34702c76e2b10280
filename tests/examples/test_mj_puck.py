"""examples/mj_puck, a MuJoCo env written from an MJCF string with absolute position targets: the env builds, its
expert pushes the puck onto the goal, its shifts are the nominal task at severity 0, seeded resets fix the episode and
the obstacle reaches the keep-out steering as scene_obstacles(). The example's pipeline is not run here (minutes)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from fiper.collection import run_episode
from fiper.control.period import control_period_s

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # imported as examples.mj_puck, as from the repository root

from examples.mj_puck import envs as puck  # noqa: E402
from examples.mj_puck.expert import PuckExpert  # noqa: E402


def test_the_env_builds_its_expert_succeeds_and_shifts_at_zero_are_the_nominal_task():
    env = puck.make_puck()
    assert env.action_space.shape == (2,) and env.observation_space.shape == (12,)
    assert control_period_s(env) == pytest.approx(0.05)
    episodes = [run_episode(env, PuckExpert(env), seed) for seed in range(3)]
    assert all(e.success and e.failure_step == -1 for e in episodes)
    assert all(len(e.data["action"]) < 120 for e in episodes)  # 72 steps on average (README)
    nominal = env.reset(seed=5)[0]
    for shift in (puck.heavy_puck, puck.shove, puck.obstacle_in_path, puck.obs_noise):
        np.testing.assert_array_equal(shift(severity=0.0).reset(seed=5)[0], nominal)
    moved = puck.obstacle_in_path(severity=1.0).reset(seed=5)[0]
    assert np.linalg.norm(moved[10:] - nominal[10:]) > 0.05  # the obstacle (obs[10:12]) moved toward the path
    with pytest.raises(ValueError, match=r"shove: severity must be a number in \[0, 1\], got 2.0"):
        puck.shove(severity=2.0)


def test_a_seed_fixes_the_episode_and_the_obstacle_is_the_scenes():
    env = puck.make_puck()
    actions = np.random.default_rng(0).uniform(-0.3, 0.3, (15, 2))
    runs = []
    for seed in (0, 1, 0):
        obs = [env.reset(seed=seed)[0]] + [env.step(a)[0] for a in actions]
        runs.append(np.stack(obs))
    np.testing.assert_array_equal(runs[0], runs[2])
    (obstacle,) = env.unwrapped.scene_obstacles()
    np.testing.assert_allclose(obstacle["center"][:2], runs[2][-1][10:12])
    assert obstacle["radius"] == pytest.approx(puck.OBSTACLE_RADIUS)


def test_touching_the_obstacle_ends_the_episode_as_a_physical_failure():
    env = puck.make_puck()
    obs, _ = env.reset(seed=2)
    target = obs[10:12]  # drive the pusher straight at the obstacle's centre
    for step in range(60):
        obs, _, terminated, truncated, info = env.step(target)
        if terminated:
            break
    assert terminated and not info["is_success"] and info["failure_reason"] == "obstacle_collision" and step < 60


def _act_config(*overrides: str):
    from hydra import compose, initialize_config_dir

    conf = Path(__file__).resolve().parents[2] / "launch" / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base=None):
        return compose("act", ["env.factory=examples.mj_puck.envs:make_puck", "env.name=null", "env.obs_mode=null",
                               "cells=[[none,[0.0]]]", "videos=false", "responses=[hold,steer]", "context.position_dims=[0,1]",
                               "policy_dir=x", "monitor_dir=x", "out=x", *overrides])


def test_the_pipelines_act_check_reads_the_flat_observations_position_and_the_steers_entries(capsys):
    """Before anything is collected: a refusal for a key the observation lacks or a steer on entries that are not the
    position targets, each naming the setting; the note on a missing measured position is the act stage's, said once."""
    from launch.pipeline_checks import check_act_stage
    from launch.stress import action_context

    check_act_stage(_act_config(), "act")
    assert "note" not in capsys.readouterr().out
    action_context({"position_dims": [0, 1]}, 2, puck.make_puck())
    assert capsys.readouterr().out.count("no measured position (no key 'agent_pos'; it has {'obs': (12,)})") == 1
    check_act_stage(_act_config("context.agent_pos_key=obs", "context.agent_pos_dims=[0,1]"), "act")
    assert "note" not in capsys.readouterr().out
    with pytest.raises(ValueError, match=r"pipeline stage 'act' \(nothing has run yet\): context.agent_pos_key='agent_pos' is not"):
        check_act_stage(_act_config("context.agent_pos_key=agent_pos"), "act")
    with pytest.raises(ValueError, match=r"response 'steer' cannot act on this env: steering position_dims=\[2, 3\] index past "
                                         r"the env's 2-d action.*response_configs.steer, the pipeline's act.overrides"):
        check_act_stage(_act_config("+response_configs.steer.steering.position_dims=[2,3]"), "act")
