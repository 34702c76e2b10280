"""Reward programs: gradient directions, shapes, composition, lifting chunks, user loading, errors."""

import textwrap

import pytest
import torch

from fiper.interventions import (
    AboveTable,
    CheckedReward,
    InWorkspace,
    KeepOut,
    Reach,
    WeightedSum,
    compose,
    lift_chunks,
    load_reward,
    make_reward,
)
from fiper.interventions.rewards import REWARDS


def grad_of(reward, traj):
    traj = traj.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(reward(traj).sum(), traj)
    return g


def random_traj(batch=16, steps=8, seed=0, scale=0.3):
    return torch.randn(batch, steps, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * scale


@pytest.mark.parametrize("shape", ["sphere", "cylinder"])
def test_keep_out_pushes_points_away_from_the_centre(shape):
    centre = torch.tensor([0.1, -0.05, 0.0], dtype=torch.float64)
    r = KeepOut(center=centre.tolist(), radius=0.4, margin=0.05, tau=0.02, shape=shape, segments=False)
    traj = centre + random_traj(scale=0.2)
    g = grad_of(r, traj)
    out = traj - centre
    if shape == "cylinder":
        out[..., 2] = 0
        assert torch.all(g[..., 2] == 0)  # a vertical cylinder never pushes along z
    inside = r.distance(traj) < 0.4
    assert inside.sum() > 50
    cos = (g * out).sum(-1)[inside] / (g.norm(dim=-1)[inside] * out.norm(dim=-1)[inside])
    assert torch.all(cos > 0.999)  # radially outward
    assert r(traj).shape == (16,)
    far = centre + torch.tensor([2.0, 0.0, 0.0], dtype=torch.float64)
    assert r(far.expand(3, 5, 3)).abs().max() < 1e-12  # ~0 well outside radius + margin
    deep = r(centre.expand(1, 4, 3))
    assert deep.item() == pytest.approx(-4 * 0.45, rel=1e-3)  # ~ minus summed penetration depth


def test_keep_out_on_segments_catches_jumps_and_pushes_sideways():
    # Two points on either side of the disc: each is outside, the segment between them is not.
    traj = torch.tensor([[[-0.5, 0.05, 0.0], [0.5, 0.05, 0.0]]], dtype=torch.float64)
    points = KeepOut([0, 0], radius=0.3, segments=False)
    path = KeepOut([0, 0], radius=0.3)
    assert points(traj).abs().item() < 1e-6
    assert path(traj).item() == pytest.approx(-0.25, abs=1e-3)  # penetration of the segment
    g = grad_of(path, traj)
    assert torch.all(g[0, :, 1] > 0) and torch.allclose(g[0, :, 0], torch.zeros(2, dtype=torch.float64), atol=1e-9)
    assert path.distance(random_traj()).shape == (16, 7)


def test_reach_pulls_toward_the_target():
    target = [0.5, 0.2, 0.1]
    traj = random_traj()
    for which in ("final", "closest"):
        r = Reach(target, which=which)
        g = grad_of(r, traj)
        rew = r(traj)
        assert rew.shape == (16,) and torch.all(rew <= 0)
        to_target = torch.tensor(target, dtype=torch.float64) - traj
        moved = (g.norm(dim=-1) > 0)
        assert torch.all(moved.sum(1) == 1)  # one point per trajectory is scored
        assert torch.all((g * to_target).sum(-1)[moved] > 0)
    final = Reach(target)(traj)
    assert torch.allclose(final, -((traj[:, -1] - torch.tensor(target, dtype=torch.float64)) ** 2).sum(-1))
    inside = torch.tensor(target, dtype=torch.float64).expand(2, 3, 3)
    assert torch.all(Reach(target, radius=0.1)(inside + 0.05) == 0)  # inside the target region


def test_above_table_and_workspace_push_back_inside():
    traj = random_traj()
    g = grad_of(AboveTable(z_min=0.0), traj)
    below = traj[..., 2] < -0.05
    assert torch.all(g[..., 2][below] > 0) and torch.all(g[..., :2] == 0)
    box = InWorkspace(low=[-0.2, -0.2, -0.2], high=[0.2, 0.2, 0.2])
    g = grad_of(box, traj)
    high = traj > 0.25
    low = traj < -0.25
    assert torch.all(g[high] < 0) and torch.all(g[low] > 0)
    planar = InWorkspace(low=[-0.2, -0.2], high=[0.2, 0.2])
    assert torch.all(grad_of(planar, traj)[..., 2] == 0)


def test_weighted_sum_and_compose():
    traj = random_traj()
    a, b = KeepOut([0, 0], 0.3), Reach([1, 0])
    assert torch.allclose(WeightedSum([(2.0, a), (0.5, b)])(traj), 2 * a(traj) + 0.5 * b(traj))
    built = compose([{"name": "keep_out", "center": [0, 0], "radius": 0.3, "weight": 2.0},
                     {"name": "reach", "target": [1, 0], "weight": 0.5}])
    assert torch.allclose(built(traj), 2 * a(traj) + 0.5 * b(traj))
    with pytest.raises(KeyError, match=r"unknown reward 'portal'; known rewards: \['above_table'"):
        make_reward("portal")


def test_lift_chunks_pads_planar_positions_and_integrates_velocities():
    chunks = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    traj = lift_chunks(chunks, (0, 2))
    assert traj.shape == (6, 4, 3)
    assert torch.equal(traj[..., :2], chunks[..., [0, 2]].reshape(6, 4, 2)) and torch.all(traj[..., 2] == 0)
    vel = torch.ones(1, 1, 4, 2)
    pos = lift_chunks(vel, (0, 1), velocity=True, start=torch.tensor([1.0, 2.0]), dt=0.5)
    assert torch.allclose(pos[0, :, 0], torch.tensor([1.5, 2.0, 2.5, 3.0]))
    assert torch.allclose(pos[0, :, 1], torch.tensor([2.5, 3.0, 3.5, 4.0]))
    with pytest.raises(ValueError, match="position_dims"):
        lift_chunks(chunks, (0, 7))


def test_builtins_reject_flat_trajectories_with_a_hint():
    with pytest.raises(ValueError, match="lift_chunks"):
        KeepOut([0, 0], 0.1)(torch.zeros(4, 8, 2))


def test_user_reward_from_a_file_with_and_without_factory_kwargs(tmp_path):
    path = tmp_path / "my_reward.py"
    path.write_text(textwrap.dedent("""
        import torch

        def stay_left(traj):
            return -torch.relu(traj[..., 0]).sum(-1)

        def make_stay_left(limit):
            return lambda traj: -torch.relu(traj[..., 0] - limit).sum(-1)
    """))
    traj = random_traj()
    direct = load_reward(f"{path}:stay_left")
    assert isinstance(direct, CheckedReward)
    assert torch.allclose(direct(traj), -torch.relu(traj[..., 0]).sum(-1))
    g = grad_of(direct, traj)
    assert torch.all(g[..., 0][traj[..., 0] > 0] == -1)
    built = load_reward(f"{path}:make_stay_left", limit=0.1)
    assert torch.allclose(built(traj), -torch.relu(traj[..., 0] - 0.1).sum(-1))


def test_user_reward_from_a_module_path(tmp_path, monkeypatch):
    pkg = tmp_path / "vlm_rewards"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "programs.py").write_text(
        "def near_origin(traj):\n    return -(traj ** 2).sum((-1, -2))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    r = load_reward("vlm_rewards.programs:near_origin")
    traj = random_traj()
    assert torch.allclose(r(traj), -(traj**2).sum((-1, -2)))
    keep_out = load_reward("fiper.interventions.rewards:KeepOut", center=[0, 0], radius=0.2)
    assert keep_out(traj).shape == (16,)


def test_bad_rewards_and_specs_fail_clearly(tmp_path):
    traj = random_traj(batch=5)
    with pytest.raises(ValueError, match=r"returned shape \(5, 8\).*shape \(5,\)"):
        load_reward(lambda t: t[..., 0])(traj)
    with pytest.raises(ValueError, match="non-finite"):
        load_reward(lambda t: t[:, 0, 0] / 0.0 * 0.0)(traj)
    with pytest.raises(TypeError, match="must return a torch tensor"):
        load_reward(lambda t: 1.0)(traj)
    with pytest.raises(ValueError, match="path/to/file.py:function"):
        load_reward("no_colon_here")
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_reward(f"{tmp_path}/missing.py:reward")
    (tmp_path / "empty.py").write_text("def other(t):\n    return t\n")
    with pytest.raises(AttributeError, match=r"has no attribute 'reward'; it defines \['other'\]"):
        load_reward(f"{tmp_path}/empty.py:reward")
    with pytest.raises(ModuleNotFoundError, match="not importable"):
        load_reward("no_such_package_xyz.mod:reward")
    assert "keep_out" in REWARDS
