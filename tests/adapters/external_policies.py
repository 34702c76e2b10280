"""Policy factories as a user's package would ship them (``policy_factory=external_policies:load``): the repository's
pick-and-place checkpoint seen through the diffusers adapter, with DDIM or DDPM sampling."""

from __future__ import annotations

from pathlib import Path

import torch

from adapter_helpers import fiper_as_diffusers

from policies import load_policy

CHECKPOINT = Path(__file__).resolve().parents[2] / "launch" / "checkpoints" / "pick_place_diffusion_mlp"


def load(device: str = "cpu"):
    return fiper_as_diffusers(load_policy(CHECKPOINT, device=device), "ddim", num_inference_steps=5)


def load_ddpm(device: str = "cpu"):
    return fiper_as_diffusers(load_policy(CHECKPOINT, device=device), "ddpm", num_inference_steps=5)


def not_a_policy(device: str = "cpu"):
    return {"device": device}


def no_device():
    """A factory written without the device= keyword every stage passes."""
    return load("cpu")


def cpu_always(device: str = "cpu"):
    """A factory that takes device= and ignores it."""
    return load("cpu")


class Unguided:
    """The DDIM adapter behind a sample that refuses guidance, as an adapter without denoising steps does."""

    def __init__(self, policy):
        self.policy = policy

    def __getattr__(self, name):
        return getattr(self.policy, name)

    def fingerprint(self) -> str:
        return self.policy.fingerprint()

    def sample(self, embedding, num_samples, *, generator=None, guidance=None):
        if guidance is not None:
            raise ValueError("this adapter takes no guidance")
        return self.policy.sample(embedding, num_samples, generator=generator)


def unguided(device: str = "cpu"):
    return Unguided(load(device))


class NaNSampling(Unguided):
    """An adapter whose samples turn NaN: a fault the control loop answers with the fail-safe."""

    def sample(self, embedding, num_samples, *, generator=None, guidance=None):
        return self.policy.sample(embedding, num_samples, generator=generator, guidance=guidance) * float("nan")


def nan_sampling(device: str = "cpu"):
    return NaNSampling(load(device))


class NoisyEncode(Unguided):
    """An adapter whose encode adds noise (an encoder left in train mode): the same observation, another embedding."""

    def encode(self, obs):
        z = self.policy.encode(obs)
        return z + 0.1 * torch.randn_like(z)


def noisy_encode(device: str = "cpu"):
    return NoisyEncode(load(device))


class GlobalNoise(Unguided):
    """An adapter whose sample ignores generator= and draws from the global RNG."""

    def sample(self, embedding, num_samples, *, generator=None, guidance=None):
        return self.policy.sample(embedding, num_samples, generator=None, guidance=guidance)


def global_noise(device: str = "cpu"):
    return GlobalNoise(load(device))
