"""Steering end to end: tiny diffusion and flow policies trained to drive THROUGH a disc are steered
around it by a keep-out reward, while staying close to their own straight-line modes.

Demonstrations: from the start (-1, 0) the agent drives in a straight line to (1, g), g ~ U(-0.3, 0.3),
in H = 8 position-target steps. Every such line crosses the disc of radius 0.2 at the origin.
"""

import numpy as np
import pytest
import torch

from fiper.interventions import KeepOut, Steering
from policies import PolicyConfig, build_policy

pytestmark = pytest.mark.slow

H, FAN, RADIUS, MARGIN = 8, 0.3, 0.2, 0.05
START = np.array([-1.0, 0.0])
N_OBS, B = 16, 32

# Per generative kind: training and steering settings. Diffusion samples with DDPM noise (eta = 1):
# deterministic DDIM on a tiny model makes a few percent of broken chunks, which a reward would
# happily select. Its guidance acts mostly in the early, high-noise steps (the policy scales it by
# sqrt(1 - abar)) and is partly washed out by the injected noise, hence the larger guide_scale.
# Both steer in env units (direction_space='env'): x and y are both metres, but the data's y range
# is 3x smaller than its x range, so the chain-rule (normalised) direction would favour re-timing
# the path along x over bending it in y.
KINDS = {
    "diffusion": dict(policy=dict(ddim_eta=1.0), train=dict(steps=500, lr=1e-2),
                      steer=dict(guide_scale=40.0, fk_lambda=20.0)),
    "flow": dict(policy=dict(), train=dict(steps=800, lr=2e-2), steer=dict(guide_scale=3.0, fk_lambda=30.0)),
}


def demo_paths(n, seed):
    """Start positions (n, 2) and straight-line position-target chunks (n, H, 2)."""
    rng = np.random.default_rng(seed)
    g = rng.uniform(-FAN, FAN, n)
    k = np.arange(1, H + 1) / H
    start = START + rng.normal(0, 0.01, (n, 2))
    chunk = start[:, None] + np.stack([2 * np.broadcast_to(k, (n, H)), g[:, None] * k], -1)
    return start.astype(np.float32), chunk.astype(np.float32)


def train(kind, steps, lr, seed=0, batch=128):
    """A few hundred AdamW steps of the policy's own loss on start-state windows (CPU, one thread)."""
    torch.manual_seed(seed)
    config = PolicyConfig(kind=kind, denoiser="mlp", n_obs_steps=1, horizon=H, n_action_steps=H, embed_dim=32,
                          encoder_hidden=64, mlp_hidden=64, mlp_layers=3, time_embed_dim=32,
                          num_train_timesteps=100, num_inference_steps=16, **KINDS[kind]["policy"])
    policy = build_policy(config, {"agent_pos": (2,)}, 2)
    start, chunk = demo_paths(512, seed)
    policy.fit_normalizer({"agent_pos": start}, chunk.reshape(-1, 2))
    obs, act = torch.from_numpy(start)[:, None], torch.from_numpy(chunk)
    opt = torch.optim.AdamW(policy.model.parameters(), lr=lr, weight_decay=1e-6)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.05)
    gen = torch.Generator().manual_seed(seed)
    for step in range(steps):
        idx = torch.randint(0, len(obs), (batch,), generator=gen)
        loss = policy.compute_loss({"agent_pos": obs[idx]}, act[idx], generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        policy.update_ema(min(0.995, (1 + step) / (10 + step)))
    return policy.eval()


@pytest.fixture(scope="module")
def trained():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny networks: one thread is faster and steadier on a shared machine
    try:
        yield {kind: train(kind, **KINDS[kind]["train"]) for kind in KINDS}
    finally:
        torch.set_num_threads(threads)


def crosses_disc(chunks):
    """Whether the executed path start -> chunk points (densified 10x) enters the disc, per chunk (M,)."""
    pts = np.concatenate([np.broadcast_to(START, (len(chunks), 1, 2)), chunks], axis=1)
    s = np.linspace(0, 1, 10, endpoint=False)[None, None, :, None]
    dense = (pts[:, :-1, None] + (pts[:, 1:, None] - pts[:, :-1, None]) * s).reshape(len(chunks), -1, 2)
    return np.linalg.norm(dense, axis=-1).min(1) < RADIUS


def nearest_distance(a, b):
    """For each chunk of a (M, H, 2): mean point-wise distance to the nearest chunk of b (K, H, 2)."""
    return np.linalg.norm(a[:, None] - b[None], axis=-1).mean(-1).min(1)


@pytest.mark.parametrize("kind", list(KINDS))
def test_keep_out_steering_avoids_the_disc_and_stays_near_the_policy_modes(trained, kind):
    policy = trained[kind]
    obs = torch.as_tensor(START + np.random.default_rng(1).normal(0, 0.01, (N_OBS, 2)), dtype=torch.float32)
    z = policy.encode({"agent_pos": obs[:, None]})
    plain = policy.sample(z, B, generator=torch.Generator().manual_seed(2)).numpy().reshape(-1, H, 2)

    reward = KeepOut(center=[0.0, 0.0], radius=RADIUS, margin=MARGIN, tau=0.02)
    steering = Steering(reward, num_particles=B, grad_floor=0.5, lateral_only=True, direction_space="env",
                        position_dims=(0, 1), seed=0, **KINDS[kind]["steer"])
    out = steering.steer(policy, z, generator=torch.Generator().manual_seed(3))
    steered = out.samples.numpy().reshape(-1, H, 2)
    executed = out.chunk.numpy()

    plain_through = crosses_disc(plain).mean()
    steered_through = crosses_disc(steered).mean()
    assert plain_through >= 0.9, f"the unsteered {kind} policy should drive through the disc: {plain_through:.3f}"
    assert steered_through <= 0.1, f"steered {kind} samples still cross the disc: {steered_through:.3f}"
    assert crosses_disc(executed).mean() <= 0.1  # the executed (highest-reward) chunks avoid it
    assert out.rewards.shape == (N_OBS, B) and steering.last_run["resamples"] >= 1

    # Close to the policy's own modes: a steered chunk is, on average, within 0.12 (less than the
    # disc radius) of some unsteered chunk, and 90 % of them within 0.2.
    nn = nearest_distance(steered, plain)
    assert nn.mean() < 0.12 and np.quantile(nn, 0.9) < 0.2, (nn.mean(), np.quantile(nn, 0.9))
    # ...and still drive toward the goal side like the demonstrations (nominal x step: 0.25).
    x_steps = np.diff(np.concatenate([np.broadcast_to(START, (N_OBS, 1, 2)), executed], 1)[..., 0], axis=1)
    assert np.median(x_steps.min(1)) > 0.05 and executed[:, -1, 0].min() > 0.5
