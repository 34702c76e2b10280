"""Session fixtures: the bimodal toy store and one tiny trained policy per kind, shared by all tests."""

from __future__ import annotations

import pytest
import torch
from policy_helpers import TASK, tiny_config, tiny_train_config

from policies import train_policy
from policies.toy_data import make_bimodal_demos

TRAIN_STEPS = 800


@pytest.fixture(scope="session")
def bimodal_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("toy") / "bimodal.zarr"
    make_bimodal_demos(path, n_episodes=100, task=TASK, seed=0)
    return path


@pytest.fixture(scope="session")
def trained(bimodal_store, tmp_path_factory):
    """trained(kind) -> TrainResult of a tiny MLP policy, trained once per session."""
    cache = {}

    def get(kind: str):
        if kind not in cache:
            out = tmp_path_factory.mktemp(f"{kind}_run")
            cache[kind] = train_policy(bimodal_store, tiny_train_config(tiny_config(kind), TRAIN_STEPS), out)
        return cache[kind]

    return get
