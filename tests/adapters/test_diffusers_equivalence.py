"""A fiper-trained diffusion policy sampled through DiffusersPolicy with real diffusers schedulers of the same
configuration gives fiper's own samples for the same seed (DDIM and DDPM, noise and clean-chunk prediction,
with and without guidance), within float32 rounding: the two compute the same coefficients in float64 and float32.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from adapter_helpers import N, fiper_as_diffusers, fiper_scheduler, start_obs, twin
from torch import nn

from fiper import GenerativePolicy
from fiper.adapters import DiffusersPolicy, clean_estimate, make_scheduler
from fiper.protocol import GuidanceResult

B = 16
TOL = dict(rtol=0, atol=1e-5)  # env units (actions span about 2 units); measured differences are below 1e-6


def draw(policy, z, seed, guidance=None):
    return policy.sample(z, B, generator=torch.Generator().manual_seed(seed), guidance=guidance)


class CleanPrediction(nn.Module):
    """fiper's noise predictor as a clean-chunk predictor: x0 = (x - sqrt(1 - ab_t) eps) / sqrt(ab_t)."""

    def __init__(self, eps_net: nn.Module, alphas_cumprod: torch.Tensor):
        super().__init__()
        self.eps_net = eps_net
        self.register_buffer("acp", alphas_cumprod.clone())

    def forward(self, x, t, cond):
        ab = self.acp[t.long()][:, None, None]
        return (x - (1 - ab).sqrt() * self.eps_net(x, t, cond)) / ab.sqrt()


class Pull:
    """A deterministic guidance hook: pulls the clean estimate toward a point, rolls the particles at step 2."""

    def __init__(self, target):
        self.target, self.states = torch.as_tensor(target, dtype=torch.float32), []

    def __call__(self, state):
        self.states.append(state)
        n, b = state.x0.shape[:2]
        indices = torch.arange(b).roll(1).expand(n, b).contiguous() if state.step == 2 else None
        return GuidanceResult(direction=0.5 * (self.target - state.x0) / state.action_scale, indices=indices)


def test_the_adapter_is_a_generative_policy(toy_policy, toy_task):
    adapter = fiper_as_diffusers(toy_policy, "ddim")
    assert isinstance(adapter, GenerativePolicy)
    z = adapter.encode(start_obs(toy_task, toy_policy))
    assert torch.equal(z, toy_policy.encode(start_obs(toy_task, toy_policy)))  # the very same conditioning vector
    assert draw(adapter, z, 0).shape == (N, B, toy_policy.horizon, toy_policy.action_dim)
    assert torch.equal(draw(adapter, z, 5), draw(adapter, z, 5)) and not torch.equal(draw(adapter, z, 5), draw(adapter, z, 6))


@pytest.mark.parametrize("kind,eta", [("ddim", 0.0), ("ddpm", 1.0)])
def test_same_samples_as_fiper_for_the_same_seed(toy_policy, toy_task, kind, eta):
    """DDIM (eta 0) equals diffusers' DDIMScheduler; fiper's DDIM with eta 1 is DDPM's ancestral step, and equals
    diffusers' DDPMScheduler (fixed_small variance) draw for draw: both draw the step noise in the same order."""
    fiper_policy = twin(toy_policy, ddim_eta=eta)
    adapter = fiper_as_diffusers(toy_policy, kind)
    z = fiper_policy.encode(start_obs(toy_task, toy_policy))
    ours, theirs = draw(fiper_policy, z, 7), draw(adapter, z, 7)
    assert torch.allclose(ours, theirs, **TOL), (ours - theirs).abs().max()
    assert (ours - draw(fiper_policy, z, 8)).abs().max() > 100 * TOL["atol"]  # the seed matters: the match is not trivial


def test_clean_chunk_prediction_gives_the_same_samples(toy_policy, toy_task):
    scheduler = fiper_scheduler(toy_policy, "ddim", prediction_type="sample")
    net = CleanPrediction(toy_policy.ema.denoiser, scheduler.alphas_cumprod)
    adapter = fiper_as_diffusers(toy_policy, "ddim", net=net, prediction_type="sample")
    z = toy_policy.encode(start_obs(toy_task, toy_policy))
    assert adapter.prediction_type == "sample"
    assert torch.allclose(draw(adapter, z, 3), draw(toy_policy, z, 3), **TOL)


@pytest.mark.parametrize("kind,prediction", [("ddim", "epsilon"), ("ddim", "sample"), ("ddpm", "epsilon")])
def test_guidance_moves_the_clean_estimate_as_fiper_does(toy_policy, toy_task, kind, prediction):
    """The hook sees the scheduler's clean estimate in env units; its direction and re-indexing change the samples
    exactly as in fiper's own sampler, for noise and for clean-chunk prediction, with DDIM and DDPM steps."""
    scheduler = fiper_scheduler(toy_policy, kind, prediction_type=prediction)
    net = CleanPrediction(toy_policy.ema.denoiser, scheduler.alphas_cumprod) if prediction == "sample" else None
    adapter = fiper_as_diffusers(toy_policy, kind, net=net, prediction_type=prediction)
    reference = twin(toy_policy, ddim_eta=1.0 if kind == "ddpm" else 0.0)
    z = toy_policy.encode(start_obs(toy_task, toy_policy))
    target = [0.0, 0.8]
    ours, theirs = Pull(target), Pull(target)
    guided = draw(adapter, z, 4, theirs)
    assert torch.allclose(guided, draw(reference, z, 4, ours), **TOL)
    assert len(theirs.states) == 10 and [s.step for s in theirs.states] == list(range(10))
    for a, b in zip(ours.states, theirs.states):
        assert a.noise_scale == pytest.approx(b.noise_scale, rel=1e-4) and a.progress == b.progress
        assert torch.allclose(a.x0, b.x0, **TOL) and torch.equal(a.action_scale, b.action_scale)
    free = draw(adapter, z, 4)
    distance = lambda s: (s - torch.tensor(target)).norm(dim=-1).mean().item()  # noqa: E731
    assert distance(guided) < 0.8 * distance(free)


@pytest.mark.parametrize("kind", ["ddpm", "ddim"])
@pytest.mark.parametrize("prediction", ["epsilon", "sample"])
def test_clean_estimate_is_the_schedulers_pred_original_sample(kind, prediction):
    scheduler = make_scheduler(kind, num_train_timesteps=50, beta_schedule="squaredcos_cap_v2", clip_sample=True,
                               prediction_type=prediction)
    scheduler.set_timesteps(5)
    g = torch.Generator().manual_seed(0)
    x, out = 2 * torch.randn(4, 6, 3, generator=g), torch.randn(4, 6, 3, generator=g)
    for t in scheduler.timesteps:
        expected = scheduler.step(out, t, x, generator=g).pred_original_sample
        assert torch.equal(clean_estimate(scheduler, out, t, x), expected)
    assert expected.abs().max() <= 1.0  # clipped as the scheduler clips


def test_chunk_offset_drops_the_steps_before_the_current_one(toy_policy, toy_task):
    """lerobot and diffusion_policy execute from n_obs_steps - 1: the adapter exposes the chunk from there on."""
    whole = fiper_as_diffusers(toy_policy, "ddim")
    shifted = fiper_as_diffusers(toy_policy, "ddim", chunk_offset=toy_policy.n_obs_steps - 1)
    assert shifted.horizon == whole.horizon - 1 and shifted.model_horizon == whole.horizon
    z = whole.encode(start_obs(toy_task, toy_policy))
    assert torch.equal(draw(shifted, z, 2), draw(whole, z, 2)[:, :, 1:])
    hook = Pull([0.0, 0.8])
    assert draw(shifted, z, 2, hook).shape == (N, B, whole.horizon - 1, 2)
    assert hook.states[0].x0.shape == (N, B, whole.horizon - 1, 2) == hook.states[0].x.shape
    with pytest.raises(ValueError, match="chunk_offset=8 must be below horizon=8"):
        fiper_as_diffusers(toy_policy, "ddim", chunk_offset=8)


def test_bad_inputs_are_refused_naming_the_fix(toy_policy, toy_task):
    adapter = fiper_as_diffusers(toy_policy, "ddim")
    with pytest.raises(ValueError, match=r"observation keys \['pos'\] do not match the policy's \['agent_pos'\]"):
        adapter.encode({"pos": torch.zeros(1, 2, 2)})
    with pytest.raises(ValueError, match=r"obs\['agent_pos'\] has shape \(1, 3, 2\), expected \(N, n_obs_steps, \*shape\) = \(N, 2, 2\)"):
        adapter.encode({"agent_pos": torch.zeros(1, 3, 2)})
    with pytest.raises(ValueError, match="NaN or inf"):
        adapter.encode({"agent_pos": torch.full((1, 2, 2), float("nan"))})
    with pytest.raises(ValueError, match=r"embedding has shape \(2, 5\), expected \(N, D\) = \(N, 32\)"):
        adapter.sample(torch.zeros(2, 5), 4)
    with pytest.raises(ValueError, match="num_samples=0 must be an integer >= 1"):
        adapter.sample(torch.zeros(1, 32), 0)
    with pytest.raises(ValueError, match=r"guidance direction has shape \(1, 4, 8\)"):
        adapter.sample(torch.zeros(1, 32), 4, guidance=lambda s: torch.zeros(1, 4, 8))
    v_pred = make_scheduler("ddpm", prediction_type="v_prediction")
    with pytest.raises(ValueError, match="prediction_type='v_prediction' is not supported.*epsilon and sample"):
        fiper_as_diffusers(toy_policy, "ddpm", scheduler=v_pred)
    with pytest.raises(TypeError, match="pass a diffusers noise scheduler"):
        fiper_as_diffusers(toy_policy, "ddim", scheduler=object())
    with pytest.raises(ValueError, match="not affine per action dimension.*action_scale="):
        fiper_as_diffusers(toy_policy, "ddim", unnormalize_action=lambda x: x**3)
    with pytest.raises(ValueError, match="unknown: choose one of \\['ddim', 'ddpm'\\]"):
        make_scheduler("euler")


def test_without_diffusers_the_error_names_the_install_command():
    code = """
import sys
sys.modules['diffusers'] = None  # as if it were not installed
import fiper.adapters
try:
    fiper.adapters.make_scheduler('ddpm')
except ImportError as err:
    print(err)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "needs the diffusers package" in out and "pip install 'fiper[adapters]'" in out
