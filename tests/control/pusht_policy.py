"""The small untrained push-T policy the control-loop tests drive (its weights do not matter to them)."""

from __future__ import annotations

import torch

from policies import PolicyConfig, build_policy


def tiny_pusht_policy(obs_shapes=None):
    """A diffusion MLP policy (H = 8, 4 executed steps, 4 sampling steps) on push-T's low-dim keys, seeded."""
    torch.manual_seed(0)
    cfg = PolicyConfig(kind="diffusion", denoiser="mlp", horizon=8, n_action_steps=4, embed_dim=16, encoder_hidden=32,
                       mlp_hidden=32, mlp_layers=1, num_inference_steps=4)
    return build_policy(cfg, obs_shapes or {"agent_pos": (2,), "object": (4,)}, 2)
