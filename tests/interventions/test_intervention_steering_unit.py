"""Steering as a guidance hook on hand-built GuidanceStates (no policy)."""

import pytest
import torch

from fiper.interventions import KeepOut, Reach, Steering, SteeringConfig
from fiper.interventions.steering_config import GUIDE_SCALE
from fiper.protocol import GuidanceResult, GuidanceState


def state(x0, step=5, n_steps=10, scale=(1.0, 1.0, 1.0)):
    return GuidanceState(x=torch.zeros_like(x0), x0=x0, step=step, n_steps=n_steps, progress=(step + 1) / n_steps,
                         kind="flow", noise_scale=1.0, action_scale=torch.tensor(scale))


def particles(n=2, b=8, h=6, seed=0):
    """Chunks (N, B, H, 3): x, y positions around the origin and an unrelated third entry."""
    return torch.randn(n, b, h, 3, generator=torch.Generator().manual_seed(seed)) * 0.2


def test_reward_gradient_is_masked_scaled_and_unit_normalised():
    x0 = particles()
    steer = Steering(KeepOut([0.0, 0.0], radius=1.0, segments=False), guide_scale=0.7, repulsion_scale=0.0, fk_every=0,
                     position_dims=(0, 1), executed_steps=4, adaptive_strength=False)
    out = steer(state(x0, scale=(2.0, 0.5, 3.0)))
    d = out.direction
    assert isinstance(out, GuidanceResult) and out.indices is None and d.shape == x0.shape
    assert torch.all(d[..., 2] == 0) and torch.all(d[:, :, 4:] == 0)  # position dims of executed steps only
    assert torch.allclose(d.flatten(2).norm(dim=-1), torch.full((2, 8), 0.7))
    # Direction = unit(dR/dx0 * action_scale): KeepOut pushes radially outward, so d / scale ∝ x0.
    env = d[:, :, :4, :2] / torch.tensor([2.0, 0.5])
    radial = x0[:, :, :4, :2]
    cos = (env * radial).sum(-1) / (env.norm(dim=-1) * radial.norm(dim=-1))
    assert torch.all(cos > 0.999)


def test_guidance_waits_for_guide_from_and_repulsion_stops_after_repulsion_until():
    x0 = particles(n=1, b=16)
    steer = Steering(Reach([1.0, 0.0]), guide_scale=1.0, guide_from=0.5, repulsion_scale=0.3, repulsion_until=0.3,
                     fk_every=0)
    early = steer(state(x0, step=0)).direction  # progress 0.1: repulsion only
    y = x0[..., :2].flatten(2)
    spread = lambda z: torch.cdist(z[0], z[0]).mean()
    assert spread(y + 0.1 * early[..., :2].flatten(2)) > spread(y)
    assert early.flatten(2).norm(dim=-1).mean().item() == pytest.approx(0.3, rel=1e-4)
    middle = steer(state(x0, step=3)).direction  # progress 0.4: neither
    assert middle is None  # no direction: the policy's update is the plain one
    late = steer(state(x0, step=7)).direction  # progress 0.8: reward gradient only, toward the target
    assert torch.all((late[0, :, -1, 0]) > 0) and torch.all(late[0, :, :-1] == 0)


def test_feynman_kac_resampling_when_the_ess_collapses():
    x0 = particles(n=2, b=8)
    x0[0, :6, :, :2] = 0.0  # obs 0: 6 of 8 particles deep inside the keep-out disc, ESS ~ 2
    x0[0, 6:, :, :2] = 2.0
    x0[1, :, :, :2] += 3.0  # obs 1: all far outside, equal rewards, ESS = 8
    steer = Steering(KeepOut([0.0, 0.0], radius=0.5, segments=False), fk_every=2, fk_lambda=20.0, repulsion_scale=0.0, seed=0)
    first = steer(state(x0, step=0))
    assert first.indices is None  # checked every 2nd step only
    second = steer(state(x0, step=1))
    idx = second.indices
    assert idx is not None and idx.shape == (2, 8)
    assert torch.all(idx[0] >= 6) and set(idx[0].tolist()) == {6, 7}  # only the safe ones survive
    assert torch.equal(idx[1], torch.arange(8))  # obs 1 keeps its particles
    assert steer.last_run["resamples"] == 1 and steer.last_run["min_ess"] == pytest.approx(2.0, rel=1e-3)


def test_running_max_survives_resampling_and_is_reset_per_run():
    x0 = torch.zeros(1, 4, 3, 3)
    x0[0, 0, :, :2] = 2.0  # one safe particle
    steer = Steering(KeepOut([0.0, 0.0], radius=0.5, segments=False), fk_every=1, fk_lambda=50.0, repulsion_scale=0.0, seed=0)
    idx = steer(state(x0, step=0)).indices
    assert torch.all(idx == 0)
    assert torch.allclose(steer._run.running_max, torch.zeros(1, 4), atol=1e-6)  # all copies of the safe one
    deep = torch.zeros(1, 4, 3, 3)  # a new run starts from -inf again: all particles deep inside
    # equal weights: ESS = B, no resampling (decided on the device: the identity re-indexing)
    assert torch.equal(steer(state(deep, step=0)).indices, torch.arange(4)[None])
    assert torch.allclose(steer._run.running_max, torch.full((1, 4), -1.5), atol=1e-3)


def test_select_picks_the_highest_reward_particle():
    x0 = particles(n=3, b=5)
    steer = Steering(Reach([1.0, 1.0]))
    best, rewards = steer.select(x0)
    assert rewards.shape == (3, 5) and best.shape == (3,)
    expected = -((x0[:, :, -1, :2] - 1.0) ** 2).sum(-1)
    assert torch.allclose(rewards, expected, atol=1e-6)
    assert torch.equal(best, expected.argmax(1))


def test_wrong_reward_shape_or_bad_config_fails_clearly():
    steer = Steering(lambda traj: traj[..., 0])
    with pytest.raises(ValueError, match=r"returned shape \(8, 6\)"):
        steer(state(particles(n=1, b=8)))
    with pytest.raises(ValueError, match="num_particles"):
        SteeringConfig(num_particles=1)
    with pytest.raises(ValueError, match="repulsion_until"):
        Steering(Reach([0, 0]), repulsion_until=1.5)
    bad = particles(n=1, b=4)
    bad[0, 1, -1, 0] = float("nan")  # the point Reach scores: particle 1's reward is NaN
    nan_steer = Steering(Reach([0, 0]), fk_every=1, repulsion_scale=0.0)
    out = nan_steer(state(bad))  # recorded on the device, not raised inside the sampling loop
    assert torch.isfinite(out.direction).all() and torch.all(out.direction[0, 1] == 0)  # that particle gets no push
    assert nan_steer._run.running_max[0, 1] == -torch.inf  # and weight 0: never an ancestor
    with pytest.raises(ValueError, match="NaN/inf values at sampling step 5"):
        nan_steer.check_run()
    with pytest.raises(ValueError, match="index past action_dim"):
        Steering(Reach([0, 0]), position_dims=(0, 5))(state(particles()))


def test_ace_is_excluded_while_steering_by_default():
    assert Steering.excluded_scores == ("ace",)
    assert Steering(Reach([0, 0])).excluded_scores == ("ace",)
    assert Steering(Reach([0, 0]), exclude_scores=()).excluded_scores == ()


def test_lateral_only_bends_the_path_without_re_timing_it():
    # A straight path along the diagonal, through a keep-out disc just off its middle.
    t = torch.linspace(-1, 1, 9)
    path = torch.stack([t, t, torch.zeros(9)], dim=-1)[None, None]  # (1, 1, 9, 3)
    reward = KeepOut([0.05, -0.05], radius=0.5, segments=False)
    plain = Steering(reward, repulsion_scale=0.0, fk_every=0, adaptive_strength=False)(state(path)).direction
    lateral = Steering(reward, repulsion_scale=0.0, fk_every=0, adaptive_strength=False,
                       lateral_only=True)(state(path)).direction
    tangent = torch.tensor([1.0, 1.0]) / 2**0.5
    along = lambda d: (d[0, 0, :, :2] * tangent).sum(-1)
    assert along(plain).abs().max() > 0.1  # the radial push would also re-time the path
    assert along(lateral).abs().max() < 1e-6  # lateral: only across the path
    assert torch.all((lateral[0, 0, :, :2] * torch.tensor([-1.0, 1.0])).sum(-1) >= -1e-6)  # away from the disc side


def test_direction_space_env_divides_by_the_action_scale():
    x0 = particles(n=1, b=4)
    scale = (2.0, 0.5, 1.0)
    kw = dict(repulsion_scale=0.0, fk_every=0, adaptive_strength=False)
    reward = Reach([1.0, 1.0])
    norm = Steering(reward, **kw)(state(x0, scale=scale)).direction[..., -1, :2]
    env = Steering(reward, direction_space="env", **kw)(state(x0, scale=scale)).direction[..., -1, :2]
    grad = 2 * (torch.tensor([1.0, 1.0]) - x0[..., -1, :2])  # dR/dx0 of the final point
    s = torch.tensor(scale[:2])
    unit = lambda v: v / v.norm(dim=-1, keepdim=True)
    assert torch.allclose(unit(norm), unit(grad * s), atol=1e-5)
    assert torch.allclose(unit(env), unit(grad / s), atol=1e-5)
    with pytest.raises(ValueError, match="direction_space"):
        SteeringConfig(direction_space="world")


def test_strength_decays_over_steered_decisions():
    x_far = torch.zeros(1, 2, 4, 3)
    x_far[..., 0] = torch.linspace(-1, -0.5, 4)  # far from the target at x = 1
    steer = Steering(Reach([1.0, 0.0]), min_strength=0.05, guide_scale=1.0)
    assert steer.tracker.strength()[0] > 0.99
    steer.record(x_far[:, 0])  # baseline reward of the executed chunk
    x_near = x_far.clone()
    x_near[..., 0] = torch.linspace(0.5, 0.95, 4)
    steer.record(x_near[:, 0])  # progress ~ 1
    assert steer.tracker.strength()[0] == pytest.approx(0.05)
    d = steer(state(x_near)).direction
    assert d.flatten(2).norm(dim=-1).max().item() == pytest.approx(0.05, rel=1e-3)  # guide_scale 1 * strength
    steer.reset()
    assert steer.tracker.strength()[0] > 0.99


def test_guidance_works_inside_no_grad_sampling_loops():
    x0 = particles(n=1, b=4)
    steer = Steering(Reach([1.0, 0.0]), repulsion_scale=0.0, fk_every=0, adaptive_strength=False, guide_scale=1.0)
    with torch.no_grad():  # policies sample (and wrappers decide) under no_grad
        d = steer(state(x0)).direction
    assert torch.allclose(d.flatten(2).norm(dim=-1), torch.ones(1, 4))


def test_an_unset_guide_scale_is_the_policy_samplers_and_an_unknown_sampler_must_set_it():
    x0 = particles(n=1, b=4)
    kw = dict(repulsion_scale=0.0, fk_every=0, adaptive_strength=False)

    def size(steering, kind):
        st = state(x0)
        st.kind = kind
        return steering(st).direction[..., :2].flatten(2).norm(dim=-1).max().item()

    norm = size(Steering(Reach([1.0, 1.0]), guide_scale=1.0, **kw), "flow")  # one unit step's size on this chunk
    assert size(Steering(Reach([1.0, 1.0]), **kw), "flow") == pytest.approx(GUIDE_SCALE["flow"] * norm, rel=1e-5)
    assert size(Steering(Reach([1.0, 1.0]), **kw), "diffusion") == pytest.approx(GUIDE_SCALE["diffusion"] * norm, rel=1e-5)
    assert size(Steering(Reach([1.0, 1.0]), guide_scale=3.0, **kw), "diffusion") == pytest.approx(3.0 * norm, rel=1e-5)
    assert GUIDE_SCALE == {"diffusion": 40.0, "flow": 2.0}
    with pytest.raises(ValueError, match=r"guidance kind is 'consistency', which has no default guide_scale .*set steering guide_scale"):
        size(Steering(Reach([1.0, 1.0]), **kw), "consistency")
    with pytest.raises(ValueError, match=r"guide_scale=-1.0 is invalid: must be >= 0 \(or None"):
        SteeringConfig(guide_scale=-1.0)
