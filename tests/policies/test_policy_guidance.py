"""A guidance hook that pulls the clean estimate toward a target moves the samples there (both kinds)."""

from __future__ import annotations

import pytest
import torch
from policy_helpers import TASK

from fiper.protocol import GuidanceState


def pull_toward(target: torch.Tensor, strength: float):
    """direction = (target_normalised - x0_normalised) * strength, from the state's own scale."""

    def guidance(state: GuidanceState) -> torch.Tensor:
        return (target - state.x0) / state.action_scale * strength

    return guidance


@pytest.mark.parametrize("kind", ["diffusion", "flow"])
def test_guidance_moves_samples_toward_the_target(trained, kind):
    policy = trained(kind).policy
    z = policy.encode({"agent_pos": torch.from_numpy(TASK.start_obs(policy.n_obs_steps))})
    target = torch.tensor(TASK.reference_chunks(policy.horizon)[0], dtype=torch.float32)  # the upper arc

    def distance(chunks: torch.Tensor) -> float:
        return float((chunks[0] - target).norm(dim=-1).mean())

    def draw(strength: float) -> torch.Tensor:
        hook = pull_toward(target, strength) if strength else None
        return policy.sample(z, 256, generator=torch.Generator().manual_seed(0), guidance=hook)

    free, weak, strong = draw(0.0), draw(0.5), draw(2.0)
    d_free, d_weak, d_strong = distance(free), distance(weak), distance(strong)
    assert d_strong < d_weak < d_free and d_strong < 0.2 * d_free, (d_free, d_weak, d_strong)
    # The free policy takes the upper arc about half of the time, the strongly guided one always.
    up_free, up_strong = TASK.mode_fractions(free[0].numpy())["up"], TASK.mode_fractions(strong[0].numpy())["up"]
    assert 0.3 <= up_free < 0.65 and up_strong > 0.95, (up_free, up_strong)
