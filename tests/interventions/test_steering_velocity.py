"""Steering velocity actions scores each chunk on the path the robot would follow from its measured position, over the
control period: a chunk that enters a keep-out zone from where the robot is gets the negative reward and a push away,
while the same chunk integrated from 0 with a unit step would not. Position actions read no frame at all."""

from __future__ import annotations

import pytest
import torch

from fiper.interventions import KeepOut, Steering
from fiper.interventions.trajectory import lift_chunks
from fiper.interventions.velocity_path import VelocityFrame
from fiper.protocol import GuidanceState

ZONE = KeepOut([0.3, 0.1], radius=0.05)  # an obstacle at absolute coordinates, as an env's scene_obstacles() gives
DT = 0.1  # seconds per env step
MEASURED = [0.15, 0.1]  # the robot's measured position (m)
CHUNK = torch.tensor([[[[0.5, 0.0]] * 4]])  # (N, B, H, A) = (1, 1, 4, 2): 0.5 m/s along x for four steps


def velocity_steering(start, dt=DT, **kw) -> Steering:
    steering = Steering(ZONE, velocity_actions=True, position_dims=(0, 1), **kw)
    steering.frame = VelocityFrame(torch.tensor([start]), dt)
    return steering


def test_a_chunk_entering_the_zone_from_the_measured_position_is_penalised_where_from_0_it_is_not():
    # from (0.15, 0.1): 0.20, 0.25, 0.30, 0.35 along y = 0.1, through the zone's centre
    inside = velocity_steering(MEASURED).rewards_of(CHUNK)
    assert inside.shape == (1, 1) and float(inside) < -0.05  # the segments cross 0.1 m of the disc
    traj = lift_chunks(CHUNK, (0, 1), velocity=True, start=torch.tensor([MEASURED]), dt=DT)
    torch.testing.assert_close(traj[0, :, 0], torch.tensor([0.2, 0.25, 0.3, 0.35]))
    assert float(velocity_steering([0.0, 0.0]).rewards_of(CHUNK)) > -1e-5  # from the origin: 0.05 .. 0.2 along y = 0
    assert float(velocity_steering([0.0, 0.0], dt=1.0).rewards_of(CHUNK)) > -1e-5  # from 0 with a unit step: 0.5 .. 2


def test_the_push_moves_the_chunk_away_from_where_the_robot_would_enter_the_zone():
    kw = dict(guide_scale=1.0, grad_floor=1e-3, repulsion_scale=0.0, fk_every=0, adaptive_strength=False)
    x0 = CHUNK + torch.tensor([0.0, 0.01])  # a little off the centre line: the push has a side to go
    state = GuidanceState(x=x0, x0=x0, step=0, n_steps=4, progress=0.25, kind="flow", noise_scale=1.0,
                          action_scale=torch.ones(2))
    steering = velocity_steering(MEASURED, **kw)
    push = steering(state).direction
    assert push.norm() > 0.5  # a unit push (grad_floor 1e-3 < the gradient)
    moved = x0 + 0.05 * push
    assert float(steering.rewards_of(moved)) > float(steering.rewards_of(x0)) + 1e-3
    assert velocity_steering([0.0, 0.0], dt=1.0, **kw)(state).direction.norm() < 1e-3  # from 0, unit steps: nothing to avoid


def test_velocity_steering_without_a_frame_is_refused_and_position_steering_reads_none():
    steering = Steering(ZONE, velocity_actions=True, position_dims=(0, 1))
    with pytest.raises(ValueError, match=r"velocity steering has no start for its paths: pass steer\(\.\.\., frame="):
        steering.rewards_of(CHUNK)
    positions = Steering(ZONE, position_dims=(0, 1))
    plain = positions.rewards_of(CHUNK)
    positions.frame = VelocityFrame(torch.tensor([MEASURED]), DT)  # ignored: position targets are where they are
    assert torch.equal(positions.rewards_of(CHUNK), plain)
    assert torch.equal(plain, ZONE(lift_chunks(CHUNK, (0, 1))).reshape(1, 1))
