"""SceneKeepOut: the keep-out reward follows each episode's obstacle in a real MuJoCo scene."""

import numpy as np
import pytest
import torch

import envs
from fiper.interventions import (CheckedReward, GradedResponse, HoldPosition, KeepOut, SceneKeepOut, Steering,
                                 WeightedSum, bind_scene, compose)


def line(x0, y0, x1, y1, steps=9):
    """One straight trajectory (1, steps, 3) at z = 0."""
    t = torch.linspace(0, 1, steps, dtype=torch.float64)[:, None]
    p = torch.tensor([x0, y0, 0.0], dtype=torch.float64) * (1 - t) + torch.tensor([x1, y1, 0.0], dtype=torch.float64) * t
    return p[None]


@pytest.fixture(scope="module")
def obstacle_env():
    env = envs.make_env("push_t", shifts=[("obstacle", 1.0)])
    yield env
    env.close()


def test_scene_obstacles_report_the_placed_cylinder(obstacle_env):
    obstacle_env.reset(seed=3)
    (shift,) = obstacle_env.unwrapped.active_shifts
    (ob,) = obstacle_env.unwrapped.scene_obstacles()
    assert ob["center"][:2] == pytest.approx(shift.params["xy"]) and ob["radius"] == pytest.approx(shift.params["radius"])
    geom = obstacle_env.unwrapped.model.geom("obstacle")
    assert np.allclose(geom.pos[:2], ob["center"][:2]) and geom.size[0] == pytest.approx(ob["radius"])
    clean = envs.make_env("push_t")
    clean.reset(seed=3)
    assert clean.unwrapped.scene_obstacles() == []
    clean.close()


def test_bound_reward_penalises_paths_through_this_episodes_obstacle_only(obstacle_env):
    reward = SceneKeepOut(margin=0.02)
    centers = []
    for seed in (3, 4):
        obstacle_env.reset(seed=seed)
        reward.bind(obstacle_env)
        (x, y, _), r = obstacle_env.unwrapped.scene_obstacles()[0]["center"], obstacle_env.unwrapped.scene_obstacles()[0]["radius"]
        centers.append((x, y))
        through = reward(line(x - 0.1, y, x + 0.1, y))
        around = reward(line(x - 0.1, y + r + 0.08, x + 0.1, y + r + 0.08))
        assert float(through) < -0.05 and float(around) > -1e-3
        fixed = KeepOut([x, y], r, margin=0.02)
        assert torch.allclose(through, fixed(line(x - 0.1, y, x + 0.1, y)))
    assert np.hypot(*np.subtract(*centers)) > 0.01  # the obstacle moved, and the reward with it


def test_no_obstacle_gives_zero_reward_and_zero_gradient():
    env = envs.make_env("push_t")
    env.reset(seed=0)
    reward = SceneKeepOut()
    reward.bind(env)
    traj = line(0.0, 0.0, 0.1, 0.1).requires_grad_(True)
    out = reward(traj)
    (grad,) = torch.autograd.grad(out.sum(), traj)
    assert float(out.detach()) == 0.0 and float(grad.abs().max()) == 0.0
    env.close()


def test_unbound_or_sceneless_fails_with_the_fix():
    with pytest.raises(RuntimeError, match="bind"):
        SceneKeepOut()(line(0, 0, 1, 1))
    with pytest.raises(TypeError, match="scene_obstacles"):
        SceneKeepOut().bind(object())
    with pytest.raises(ValueError, match="tau"):
        SceneKeepOut(tau=0.0)


def test_binding_reaches_through_steering_checks_and_sums(obstacle_env):
    obstacle_env.reset(seed=5)
    inner, summed = SceneKeepOut(), SceneKeepOut()
    response = GradedResponse(steering=Steering([CheckedReward(inner), WeightedSum([(2.0, summed)])]), fallback=HoldPosition())
    response.bind(obstacle_env)
    (ob,) = obstacle_env.unwrapped.scene_obstacles()
    for r in (inner, summed):
        assert r.parts is not None and torch.allclose(r.parts[0].center[:2], torch.tensor(ob["center"][:2], dtype=torch.float64))
    made = compose([{"name": "scene_keep_out", "weight": 1.0}])
    bind_scene(made, obstacle_env)
    assert made.terms[0][1].parts is not None
