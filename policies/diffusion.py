"""Diffusion policy: DDPM training with epsilon prediction on a cosine schedule, DDIM sampling.

Training: x_t = sqrt(ab_t) x + sqrt(1 - ab_t) eps with t ~ U{0..T-1}; the denoiser predicts eps.
Sampling: ``num_inference_steps`` evenly spaced DDIM steps down to t = 0 (eta = 0: deterministic given
the initial noise). A guidance direction d shifts the noise prediction, eps <- eps - sqrt(1-ab_t) d,
which moves the clean estimate by (1 - ab_t) / sqrt(ab_t) * d (classifier-guidance style).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from fiper.protocol import Guidance
from policies.base import ChunkPolicy
from policies.config import PolicyConfig

# Cosine-schedule offset (Nichol & Dhariwal 2021) and the largest beta kept.
COSINE_S = 0.008
MAX_BETA = 0.999


def cosine_alphas_cumprod(num_steps: int) -> torch.Tensor:
    """alpha_bar_t for t = 0..T-1 of the cosine schedule, in float64."""
    t = torch.arange(num_steps + 1, dtype=torch.float64) / num_steps
    f = torch.cos((t + COSINE_S) / (1 + COSINE_S) * math.pi / 2) ** 2
    betas = (1 - f[1:] / f[:-1]).clamp(max=MAX_BETA)
    return torch.cumprod(1 - betas, dim=0)


def ddim_timesteps(num_train: int, num_steps: int) -> list[int]:
    """Evenly spaced training timesteps, descending to 0: floor(k * T / S) for k = S-1 .. 0.

    Starting one stride below T-1 ("leading" spacing, as diffusers' default) matters for the cosine
    schedule: alpha_bar at T-1 is ~1e-7, where a clean estimate (x - sqrt(1-ab) eps) / sqrt(ab)
    amplifies any error in eps a thousandfold, and one large DDIM stride then carries that error on.
    """
    return [k * num_train // num_steps for k in range(num_steps - 1, -1, -1)]


class DiffusionPolicy(ChunkPolicy):
    """DDPM-trained, DDIM-sampled action-chunk policy (see policies.base for the time-line)."""

    kind = "diffusion"

    def __init__(self, config: PolicyConfig, obs_shapes, action_dim: int):
        super().__init__(config, obs_shapes, action_dim)
        acp = cosine_alphas_cumprod(config.num_train_timesteps)
        self.register_buffer("alphas_cumprod", acp.float(), persistent=False)
        self._acp = acp.tolist()  # python floats for the sampling loop (no device syncs)

    def _loss(self, denoiser: nn.Module, x1: Tensor, cond: Tensor, generator: torch.Generator | None) -> Tensor:
        b = x1.shape[0]
        t = torch.randint(0, self.config.num_train_timesteps, (b,), generator=generator, device=x1.device)
        noise = torch.randn(x1.shape, generator=generator, device=x1.device)
        ab = self.alphas_cumprod[t][:, None, None]
        noisy = ab.sqrt() * x1 + (1 - ab).sqrt() * noise
        return nn.functional.mse_loss(denoiser(noisy, t.float(), cond), noise)

    def _clean(self, x: Tensor, eps: Tensor, ab: float) -> Tensor:
        x0 = (x - math.sqrt(1 - ab) * eps) / math.sqrt(ab)
        return x0.clamp(-1, 1) if self.config.clip_sample else x0

    def _sample_normalized(self, noise: Tensor, cond: Tensor, generator: torch.Generator | None,
                           guidance: Guidance | None) -> Tensor:
        steps = ddim_timesteps(self.config.num_train_timesteps, self.config.num_inference_steps)
        eta, x, checks = self.config.ddim_eta, noise, []
        for i, t in enumerate(steps):
            ab = self._acp[t]
            ab_prev = self._acp[steps[i + 1]] if i + 1 < len(steps) else 1.0
            eps = self._denoise(x, t, cond)
            x0 = self._clean(x, eps, ab)
            x, eps, direction = self._guide(guidance, x, eps, x0, i, len(steps), math.sqrt(1 - ab), checks)
            if direction is not None:
                eps = eps - math.sqrt(1 - ab) * direction
            if guidance is not None:
                x0 = self._clean(x, eps, ab)
            if self.config.clip_sample:  # keep eps consistent with the clipped clean estimate
                eps = (x - math.sqrt(ab) * x0) / math.sqrt(1 - ab)
            sigma = eta * math.sqrt((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev))
            x = math.sqrt(ab_prev) * x0 + math.sqrt(max(1 - ab_prev - sigma**2, 0.0)) * eps
            if sigma > 0:
                x = x + sigma * torch.randn(x.shape, generator=generator, device=x.device)
        self._check_guidance(checks)  # the loop never waits for the device; this is its one read
        return x
