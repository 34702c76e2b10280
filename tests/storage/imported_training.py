"""A tiny policy trained on an imported store: the import is usable as demonstrations, not only readable."""

from __future__ import annotations

from pathlib import Path


def train_tiny(store: Path, obs_keys: list[str], out: Path) -> list[str]:
    """Train three steps on ``store`` reading ``obs_keys``; the observation keys the saved policy reads."""
    from policies import PolicyConfig, TrainConfig, load_policy, train_policy

    cfg = PolicyConfig(kind="diffusion", denoiser="mlp", horizon=4, n_action_steps=2, embed_dim=8, encoder_hidden=16,
                       mlp_hidden=16, mlp_layers=1, num_inference_steps=2, obs_keys=obs_keys)
    train_policy(store, TrainConfig(policy=cfg, steps=3, batch_size=4, device="cpu", progress=False, cpu_threads=1,
                                    val_every=1000, checkpoint_every=10**6), out)
    return list(load_policy(out).obs_shapes)
