"""Tiny policy and training configurations shared by the policy tests (fast on 2 CPU cores)."""

from __future__ import annotations

from policies import PolicyConfig, TrainConfig
from policies.toy_data import BimodalTask

# A short approach then an 8-step half circle: 3 of 10 windows per episode are ambiguous.
TASK = BimodalTask(approach_steps=2, arc_steps=8)
TINY = dict(horizon=8, n_action_steps=4, n_obs_steps=2, down_dims=[16, 32], embed_dim=32, encoder_hidden=64,
            mlp_hidden=128, mlp_layers=2, time_embed_dim=32)
SAMPLER_STEPS = {"diffusion": 16, "flow": 10}
OBS_SHAPES = {"agent_pos": (2,)}


def tiny_config(kind: str, denoiser: str = "mlp", **overrides) -> PolicyConfig:
    fields = {**TINY, "num_inference_steps": SAMPLER_STEPS.get(kind, 10), **overrides}
    return PolicyConfig(kind=kind, denoiser=denoiser, **fields)


def tiny_train_config(policy: PolicyConfig, steps: int, **overrides) -> TrainConfig:
    base = dict(batch_size=128, lr=1e-2, warmup_steps=20, ema_decay=0.95, val_every=100, checkpoint_every=10**6,
                device="cpu", cpu_threads=1, progress=False)
    return TrainConfig(policy=policy, steps=steps, **{**base, **overrides})


def passes_mode_check(fractions: dict[str, float]) -> bool:
    """Both arcs sampled (each >= 30 %) and almost nothing (< 10 %) heading into the obstacle."""
    return fractions["up"] >= 0.3 and fractions["down"] >= 0.3 and fractions["middle"] < 0.1
