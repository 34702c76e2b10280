"""A fiper-trained policy seen through the diffusers adapter: the same encoder, denoiser and normaliser,
with a diffusers scheduler configured like fiper's sampler (cosine betas, leading timesteps, clipping)."""

from __future__ import annotations

import dataclasses

import torch

from fiper.adapters import DiffusersPolicy, make_scheduler
from policies import build_policy

N = 3  # observations per batch in the comparisons

# fiper's diffusion sampler (policies/diffusion.py) as diffusers configures it: the cosine schedule with
# betas capped at 0.999 is 'squaredcos_cap_v2'; DDIM's last step goes to alpha_bar = 1 (set_alpha_to_one).
SCHEDULER = {
    "ddim": {"beta_schedule": "squaredcos_cap_v2", "set_alpha_to_one": True, "timestep_spacing": "leading"},
    "ddpm": {"beta_schedule": "squaredcos_cap_v2", "variance_type": "fixed_small", "timestep_spacing": "leading"},
}
# fiper's DDIM keeps eps consistent with the clipped clean estimate; diffusers' DDIM does that on request.
STEP_KWARGS = {"ddim": {"eta": 0.0, "use_clipped_model_output": True}, "ddpm": {}}


def fiper_scheduler(policy, kind: str, prediction_type: str = "epsilon"):
    c = policy.config
    return make_scheduler(kind, num_train_timesteps=c.num_train_timesteps, clip_sample=c.clip_sample,
                          prediction_type=prediction_type, **SCHEDULER[kind])


def fiper_as_diffusers(policy, kind: str = "ddim", *, net=None, prediction_type: str = "epsilon", **overrides) -> DiffusersPolicy:
    """The adapter built from a fiper ChunkPolicy's EMA encoder and denoiser, normaliser and time-line."""
    parts = dict(
        encoder=policy.ema.encoder, net=net or policy.ema.denoiser, scheduler=fiper_scheduler(policy, kind, prediction_type),
        normalize_obs=policy.normalizer.normalize_obs, unnormalize_action=policy.normalizer.action.unnormalize,
        obs_shapes=policy.obs_shapes, horizon=policy.horizon, n_action_steps=policy.n_action_steps,
        n_obs_steps=policy.n_obs_steps, action_dim=policy.action_dim, embedding_dim=policy.embedding_dim,
        num_inference_steps=policy.config.num_inference_steps, step_kwargs=STEP_KWARGS[kind], cond_arg=None,
        device=policy.device)
    parts.update(overrides)
    return DiffusersPolicy(**parts)


def twin(policy, **changes):
    """The same weights under a changed sampler config (e.g. ddim_eta=1: DDPM's posterior noise)."""
    other = build_policy(dataclasses.replace(policy.config, **changes), policy.obs_shapes, policy.action_dim)
    other.load_state_dict(policy.state_dict())
    return other.to(policy.device).eval()


def start_obs(task, policy):
    """N observation histories around the toy task's start state."""
    obs = torch.as_tensor(task.start_obs(policy.n_obs_steps, N))
    return {"agent_pos": obs + torch.linspace(-0.05, 0.05, N)[:, None, None]}
