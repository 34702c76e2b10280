"""On a CUDA machine: the diffusers adapter samples on the GPU with a CUDA generator, equals fiper's own sampler
there for the same seed (DDIM and DDPM), and steering runs through it."""

from __future__ import annotations

import copy

import pytest
import torch
from adapter_helpers import fiper_as_diffusers, start_obs, twin

from fiper.interventions import Steering

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

DEVICE = torch.device("cuda")
ATOL = 1e-4  # float32 on the GPU, TF32 off


@pytest.fixture
def ieee_fp32():
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.mark.parametrize("kind,eta", [("ddim", 0.0), ("ddpm", 1.0)])
def test_same_samples_as_fiper_on_the_gpu(toy_policy, toy_task, ieee_fp32, kind, eta):
    gpu = copy.deepcopy(toy_policy).to(DEVICE)
    ours, adapter = twin(gpu, ddim_eta=eta), fiper_as_diffusers(gpu, kind)
    assert adapter.device.type == "cuda" and adapter.action_scale.device.type == "cuda"
    z = adapter.encode(start_obs(toy_task, toy_policy))
    assert z.device.type == "cuda"
    draw = lambda p: p.sample(z, 16, generator=torch.Generator(device=DEVICE).manual_seed(3))  # noqa: E731
    mine, theirs = draw(ours), draw(adapter)
    assert theirs.device.type == "cuda" and torch.allclose(mine, theirs, atol=ATOL, rtol=0)
    assert adapter.fingerprint() == fiper_as_diffusers(toy_policy, kind).fingerprint()  # weights, not their device
    with pytest.raises(ValueError, match="generator is on cpu but the policy is on cuda"):
        adapter.sample(z, 4, generator=torch.Generator().manual_seed(0))


def test_steering_runs_on_the_gpu(toy_policy, toy_task, ieee_fp32):
    adapter = fiper_as_diffusers(copy.deepcopy(toy_policy).to(DEVICE), "ddpm")
    goal = torch.tensor([0.0, -1.2], device=DEVICE)
    z = adapter.encode(start_obs(toy_task, toy_policy))
    steering = Steering(lambda traj: -(traj[:, -1, :2] - goal).norm(dim=-1), num_particles=16, guide_scale=3.0,
                        adaptive_strength=False, seed=0)
    out = steering.steer(adapter, z, generator=torch.Generator(device=DEVICE).manual_seed(0))
    free = adapter.sample(z, 16, generator=torch.Generator(device=DEVICE).manual_seed(0))
    distance = lambda s: (s[..., -1, :] - goal).norm(dim=-1).mean()  # noqa: E731
    assert out.samples.device.type == "cuda" and distance(out.samples) < 0.7 * distance(free)
