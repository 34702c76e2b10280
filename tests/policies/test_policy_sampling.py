"""Protocol conformance, shapes, determinism and input validation of both policy kinds and denoisers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from policy_helpers import OBS_SHAPES, tiny_config

from fiper.protocol import GenerativePolicy, GuidanceResult
from policies import DiffusionPolicy, FlowPolicy, build_policy

VARIANTS = [("diffusion", "mlp"), ("diffusion", "unet"), ("flow", "mlp"), ("flow", "unet")]


def make(kind: str, denoiser: str = "mlp"):
    torch.manual_seed(0)
    return build_policy(tiny_config(kind, denoiser), OBS_SHAPES, 2).eval()


def obs(n: int, n_obs: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    return {"agent_pos": torch.randn(n, n_obs, 2, generator=torch.Generator().manual_seed(seed))}


@pytest.mark.parametrize("kind,denoiser", VARIANTS)
def test_shapes_dtypes_and_protocol(kind, denoiser):
    policy = make(kind, denoiser)
    assert isinstance(policy, GenerativePolicy)
    assert isinstance(policy, DiffusionPolicy if kind == "diffusion" else FlowPolicy)
    assert (policy.horizon, policy.n_action_steps, policy.n_obs_steps, policy.action_dim, policy.embedding_dim) == (8, 4, 2, 2, 32)
    assert policy.obs_shapes == {"agent_pos": (2,)} and policy.device == torch.device("cpu")
    z = policy.encode(obs(3))
    assert z.shape == (3, 32) and z.dtype == torch.float32 and not z.requires_grad
    chunks = policy.sample(z, 5)
    assert chunks.shape == (3, 5, 8, 2) and chunks.dtype == torch.float32 and torch.isfinite(chunks).all()
    big = policy.sample(z[:2], 256)
    assert big.shape == (2, 256, 8, 2)
    # Samples for different observations and different particles differ.
    assert (big[0] - big[1]).abs().max() > 1e-3 and big[0].std(0).mean() > 1e-3
    policy.reset()  # stateless: must simply work


@pytest.mark.parametrize("kind", ["diffusion", "flow"])
def test_same_generator_seed_gives_identical_samples(kind):
    policy = make(kind)
    z = policy.encode(obs(2))
    a = policy.sample(z, 16, generator=torch.Generator().manual_seed(7))
    b = policy.sample(z, 16, generator=torch.Generator().manual_seed(7))
    c = policy.sample(z, 16, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 1e-3


def test_batched_sampling_matches_per_observation_sampling():
    """The N*B batch is one call, but each observation's samples depend only on its own embedding."""
    policy = make("flow")
    z = policy.encode(obs(2))
    noise_gen = torch.Generator().manual_seed(3)
    both = policy.sample(z, 4, generator=noise_gen)
    # Same noise, sampled one observation at a time: draw the same (N, B, H, A) noise layout by hand.
    noise = torch.randn((2, 4, 8, 2), generator=torch.Generator().manual_seed(3))
    single = torch.stack([policy.normalizer.action.unnormalize(
        policy._sample_normalized(noise[i : i + 1], z[i : i + 1].repeat_interleave(4, 0), None, None))[0] for i in range(2)])
    torch.testing.assert_close(both, single, atol=1e-5, rtol=1e-5)


def test_non_finite_observation_names_the_key():
    policy = make("diffusion")
    bad = obs(2)
    bad["agent_pos"][1, 0, 1] = float("nan")
    with pytest.raises(ValueError, match="agent_pos.*NaN or inf"):
        policy.encode(bad)
    bad["agent_pos"][1, 0, 1] = float("inf")
    with pytest.raises(ValueError, match="agent_pos"):
        policy.encode(bad)


def test_wrong_keys_and_shapes_name_the_expected_shape():
    policy = make("diffusion")
    with pytest.raises(ValueError, match=r"missing \['agent_pos'\].*\(N, 2, 2\)"):
        policy.encode({"pos": torch.zeros(1, 2, 2)})
    with pytest.raises(ValueError, match=r"unknown \['extra'\].*\(N, 2, 2\)"):
        policy.encode({**obs(1), "extra": torch.zeros(1, 2, 2)})
    with pytest.raises(ValueError, match=r"shape \(1, 3, 2\), expected \(N, n_obs_steps, \*shape\) = \(N, 2, 2\)"):
        policy.encode({"agent_pos": torch.zeros(1, 3, 2)})
    with pytest.raises(ValueError, match=r"expected \(N, n_obs_steps, \*shape\) = \(N, 2, 2\)"):
        policy.encode({"agent_pos": torch.zeros(2, 2)})
    with pytest.raises(TypeError, match="mapping"):
        policy.encode(torch.zeros(1, 2, 2))


def test_sample_validates_embedding_and_count():
    policy = make("flow")
    with pytest.raises(ValueError, match=r"expected \(N, D\) = \(N, 32\)"):
        policy.sample(torch.zeros(2, 31), 4)
    with pytest.raises(ValueError, match=r"expected \(N, D\) = \(N, 32\)"):
        policy.sample(torch.zeros(32), 4)
    with pytest.raises(ValueError, match="NaN or inf"):
        policy.sample(torch.full((1, 32), float("nan")), 4)
    with pytest.raises(ValueError, match="num_samples"):
        policy.sample(torch.zeros(1, 32), 0)


def test_numpy_observations_are_accepted():
    policy = make("diffusion")
    z_np = policy.encode({"agent_pos": np.zeros((2, 2, 2), dtype=np.float32)})
    z_t = policy.encode({"agent_pos": torch.zeros(2, 2, 2)})
    assert torch.equal(z_np, z_t)


@pytest.mark.parametrize("kind", ["diffusion", "flow"])
def test_guidance_indices_reorder_particles(kind):
    """Re-indexing every particle to particle 0 at the first step makes all (deterministic) samples equal."""
    policy = make(kind)
    z = policy.encode(obs(2))

    def collapse(state):
        if state.step == 0:
            return GuidanceResult(indices=torch.zeros(state.x.shape[:2], dtype=torch.long))
        return None

    chunks = policy.sample(z, 8, generator=torch.Generator().manual_seed(0), guidance=collapse)
    assert (chunks - chunks[:, :1]).abs().max() < 1e-5
    assert (chunks[0, 0] - chunks[1, 0]).abs().max() > 1e-3  # observations are not mixed


@pytest.mark.parametrize("kind", ["diffusion", "flow"])
def test_guidance_sees_consistent_state_and_bad_answers_fail(kind):
    policy = make(kind)
    z = policy.encode(obs(2))
    seen = []

    def record(state):
        seen.append(state)
        return None

    plain = policy.sample(z, 3, generator=torch.Generator().manual_seed(1))
    hooked = policy.sample(z, 3, generator=torch.Generator().manual_seed(1), guidance=record)
    assert torch.equal(plain, hooked)  # a hook that returns None changes nothing
    n_steps = policy.config.num_inference_steps
    assert [s.step for s in seen] == list(range(n_steps)) and all(s.n_steps == n_steps for s in seen)
    assert seen[-1].progress == 1.0 and all(a.progress < b.progress for a, b in zip(seen, seen[1:]))
    assert all(s.kind == kind and s.x.shape == s.x0.shape == (2, 3, 8, 2) for s in seen)
    torch.testing.assert_close(seen[0].action_scale, policy.normalizer.action.scale)
    scales = [s.noise_scale for s in seen]
    if kind == "flow":
        assert scales == [1.0] * n_steps
    else:
        assert all(0 < b < a <= 1 for a, b in zip(scales, scales[1:]))
    with pytest.raises(ValueError, match=r"direction has shape \(2, 3, 8\)"):
        policy.sample(z, 3, guidance=lambda s: torch.zeros(2, 3, 8))
    with pytest.raises(ValueError, match="indices"):
        policy.sample(z, 3, guidance=lambda s: GuidanceResult(indices=torch.full((2, 3), 3)))
    with pytest.raises(TypeError, match="GuidanceResult"):
        policy.sample(z, 3, guidance=lambda s: 1.0)


@pytest.mark.parametrize("kind", ["diffusion", "flow"])
def test_sampled_chunks_stay_in_the_demos_action_range(kind):
    """With clip_sample (the default) no sampled action leaves the range the normaliser was fitted on; without it an
    untrained denoiser's chunks do."""
    lo, hi = np.array([0.0, -2.0]), np.array([1.0, 3.0])
    clipped = {}
    for clip in (True, False):
        torch.manual_seed(0)
        policy = build_policy(tiny_config(kind, clip_sample=clip), OBS_SHAPES, 2).eval()
        policy.fit_normalizer({"agent_pos": np.random.default_rng(0).normal(size=(50, 2))},
                              np.stack([lo, hi, (lo + hi) / 2]))
        chunks = policy.sample(policy.encode(obs(4)), 64, generator=torch.Generator().manual_seed(0)).numpy()
        clipped[clip] = float(((chunks < lo - 1e-5) | (chunks > hi + 1e-5)).mean())
    assert clipped[True] == 0.0 and clipped[False] > 0.1


@pytest.mark.parametrize("kind", ["diffusion", "flow"])
def test_an_action_entry_constant_in_the_demos_stays_where_they_held_it(kind):
    """A gripper the demonstrations never moved (-1 throughout): the sampled chunks keep it within 5e-5 of -1, where a
    unit scale let it range over [-2, 0], half the env's [-1, 1] range outside it."""
    torch.manual_seed(0)
    policy = build_policy(tiny_config(kind), OBS_SHAPES, 2).eval()
    actions = np.stack([np.random.default_rng(1).uniform(-1, 1, 30), np.full(30, -1.0)], axis=1)
    policy.fit_normalizer({"agent_pos": np.random.default_rng(0).normal(size=(50, 2))}, actions)
    chunks = policy.sample(policy.encode(obs(4)), 64, generator=torch.Generator().manual_seed(0)).numpy()
    assert np.abs(chunks[..., 1] + 1.0).max() <= 5e-5 + 1e-6
    assert chunks[..., 0].min() >= -1 - 1e-5 and chunks[..., 0].max() <= 1 + 1e-5 and chunks[..., 0].std() > 0.1
