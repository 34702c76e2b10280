"""Flow-matching policy: conditional flow matching on the linear path, Euler integration.

Training: x_t = (1 - t) x0 + t x1 with x0 ~ N(0, I) noise, x1 the normalised demonstration chunk,
t ~ U[0, 1]; the denoiser regresses the velocity x1 - x0. Sampling integrates dx/dt = v(x, t) from
t = 0 to 1 in ``num_inference_steps`` Euler steps, then clips the chunk to the normalised range (the demos'
action range; ``clip_sample``). The clean estimate at time t is x + (1 - t) v, and a guidance direction is added
to the velocity: v <- v + d.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from fiper.protocol import Guidance
from policies.base import ChunkPolicy

# The denoiser's time embedding sees t * TIME_SCALE, spanning a range like the diffusion steps.
TIME_SCALE = 100.0
# config.json of a flow checkpoint whose clip_sample clips the sampled chunk; without it the chunk was never clipped.
FLOW_CLIP_KEY, FLOW_CLIP_RESULT = "flow_clip", "result"


class FlowPolicy(ChunkPolicy):
    """Flow-matching action-chunk policy (see policies.base for the time-line)."""

    kind = "flow"
    checkpoint_marks = {FLOW_CLIP_KEY: FLOW_CLIP_RESULT}

    def _loss(self, denoiser: nn.Module, x1: Tensor, cond: Tensor, generator: torch.Generator | None) -> Tensor:
        b = x1.shape[0]
        t = torch.rand((b,), generator=generator, device=x1.device)
        x0 = torch.randn(x1.shape, generator=generator, device=x1.device)
        xt = (1 - t)[:, None, None] * x0 + t[:, None, None] * x1
        return nn.functional.mse_loss(denoiser(xt, t * TIME_SCALE, cond), x1 - x0)

    def _sample_normalized(self, noise: Tensor, cond: Tensor, generator: torch.Generator | None,
                           guidance: Guidance | None) -> Tensor:
        n_steps, x = self.config.num_inference_steps, noise
        dt, checks = 1.0 / n_steps, []
        for i in range(n_steps):
            t = i * dt
            v = self._denoise(x, t * TIME_SCALE, cond)
            x, v, direction = self._guide(guidance, x, v, x + (1 - t) * v, i, n_steps, 1.0, checks)
            if direction is not None:
                v = v + direction
            x = x + dt * v
        self._check_guidance(checks)  # the loop never waits for the device; this is its one read
        return x.clamp(-1, 1) if self.config.clip_sample else x
