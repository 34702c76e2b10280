"""Closed-form reward gradients (what keeps a steered step cheap) equal autograd's, and steer the same."""

from __future__ import annotations

import pytest
import torch

from fiper.interventions import KeepOut, Reach, Steering, WeightedSum
from fiper.interventions.scene import SceneKeepOut
from fiper.interventions.velocity_path import VelocityFrame
from fiper.protocol import GuidanceState


def trajectories(seed: int = 0) -> torch.Tensor:
    """(12, 9, 3) paths crossing a unit-scale scene: some inside the obstacles, some outside."""
    g = torch.Generator().manual_seed(seed)
    start, step = torch.rand(12, 1, 3, generator=g) * 2 - 1, torch.randn(12, 1, 3, generator=g) * 0.15
    return (start + step * torch.arange(9.0)[:, None] + 0.02 * torch.randn(12, 9, 3, generator=g)).double()


def autograd(program, traj: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    leaf = traj.clone().requires_grad_(True)
    value = program(leaf)
    (grad,) = torch.autograd.grad(value.sum(), leaf)
    return value.detach(), grad


class Scene:
    """A stand-in env exposing two obstacles the way fiper's tasks do."""

    unwrapped = property(lambda self: self)

    def scene_obstacles(self):
        return [{"center": [0.1, 0.0, 0.0], "radius": 0.4}, {"center": [-0.5, 0.5, 0.0], "radius": 0.2}]


@pytest.mark.parametrize("shape", ["cylinder", "sphere"])
@pytest.mark.parametrize("segments", [True, False])
def test_keep_out_closed_form_equals_autograd(shape, segments):
    program = KeepOut([0.1, 0.0, 0.05], radius=0.4, margin=0.05, tau=0.02, shape=shape, segments=segments)
    traj = trajectories()
    value, grad = program.value_and_grad(traj)
    ref_value, ref_grad = autograd(program, traj)
    assert ref_grad.abs().max() > 0.5 and (ref_value < -0.05).sum() >= 3  # several paths cut through the obstacle
    torch.testing.assert_close(value, ref_value, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-6, atol=1e-9)


def test_scene_keep_out_and_weighted_sums_add_their_closed_forms():
    scene = SceneKeepOut(margin=0.05)
    scene.bind(Scene())
    total = WeightedSum([(2.0, scene), (0.5, KeepOut([0.3, -0.3], radius=0.2))])
    traj = trajectories(1)
    for program in (scene, total):
        value, grad = program.value_and_grad(traj)
        ref_value, ref_grad = autograd(program, traj)
        torch.testing.assert_close(value, ref_value, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(grad, ref_grad, rtol=1e-6, atol=1e-9)
    assert WeightedSum([(1.0, scene), (1.0, Reach([0.0, 0.0]))]).value_and_grad is None  # Reach: autograd
    with pytest.raises(RuntimeError, match="not bound"):
        SceneKeepOut().value_and_grad(traj)


@pytest.mark.parametrize("velocity", [False, True])
def test_steering_directions_are_the_same_with_the_closed_form_or_autograd(velocity):
    g = torch.Generator().manual_seed(3)
    x0 = 0.1 * torch.randn(2, 16, 8, 3, generator=g)  # (N, B, H, A): positions in dims 0, 2
    program = KeepOut([0.05, 0.0], radius=0.3, margin=0.02)
    kw = dict(position_dims=(0, 2), executed_steps=5, fk_every=2, fk_lambda=30.0, seed=0, velocity_actions=velocity,
              repulsion_until=1.0, grad_floor=0.5, lateral_only=True, direction_space="env")
    closed, plain = Steering(program, **kw), Steering(lambda traj: program(traj), **kw)  # a lambda has no closed form
    if velocity:  # paths from each observation's measured position, over a 0.5 s step: dt enters the chain rule
        closed.frame = plain.frame = VelocityFrame(torch.tensor([[0.02, -0.1], [-0.05, 0.08]]), 0.5)
    for step in range(4):
        state = GuidanceState(x=x0, x0=x0, step=step, n_steps=4, progress=(step + 1) / 4, kind="flow", noise_scale=1.0,
                              action_scale=torch.tensor([0.5, 2.0, 1.0]))
        a, b = closed(state), plain(state)
        torch.testing.assert_close(a.direction, b.direction, rtol=1e-4, atol=1e-6)
        assert (a.indices is None) == (b.indices is None) and (a.indices is None or torch.equal(a.indices, b.indices))
    assert closed.last_run["resamples"] == plain.last_run["resamples"] >= 1
    assert torch.all(a.direction[..., 1] == 0) and torch.all(a.direction[:, :, 5:] == 0)  # dims 0, 2 of steps < 5
