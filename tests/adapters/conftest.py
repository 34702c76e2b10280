"""One tiny fiper diffusion policy, trained once per session, for the adapter tests."""

from __future__ import annotations

import pytest

from policies import train_policy
from policies.toy_data import BimodalTask, make_bimodal_demos, toy_policy_config, toy_train_config

TRAIN_STEPS = 120  # enough for a denoiser whose output depends on the sample, the time and the embedding


@pytest.fixture(scope="session")
def toy_task():
    return BimodalTask()


@pytest.fixture(scope="session")
def toy_policy(tmp_path_factory, toy_task):
    """A fiper DDIM policy: 100 training timesteps, 10 sampling steps (diffusers' leading spacing gives the same ones)."""
    root = tmp_path_factory.mktemp("adapter_policy")
    make_bimodal_demos(root / "demos.zarr", n_episodes=30, task=toy_task, seed=0)
    config = toy_policy_config("diffusion", "mlp", num_train_timesteps=100, num_inference_steps=10)
    train = toy_train_config(config, TRAIN_STEPS, device="cpu", progress=False)
    return train_policy(root / "demos.zarr", train, root / "policy").policy.eval()
