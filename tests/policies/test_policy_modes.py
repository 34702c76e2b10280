"""Trained tiny policies reproduce the bimodal demonstrations; untrained ones do not."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from policy_helpers import OBS_SHAPES, TASK, passes_mode_check, tiny_config

from fiper.storage import EpisodeStore
from policies import build_policy

KINDS = ["diffusion", "flow"]


def start_samples(policy, n: int = 256, seed: int = 0) -> np.ndarray:
    z = policy.encode({"agent_pos": torch.from_numpy(TASK.start_obs(policy.n_obs_steps))})
    return policy.sample(z, n, generator=torch.Generator().manual_seed(seed))[0].numpy()


@pytest.mark.parametrize("kind", KINDS)
def test_trained_policy_samples_both_modes_and_not_the_middle(trained, kind):
    result = trained(kind)
    fractions = TASK.mode_fractions(start_samples(result.policy))
    assert fractions["up"] >= 0.3 and fractions["down"] >= 0.3, fractions
    assert fractions["middle"] < 0.1, fractions
    assert passes_mode_check(fractions)
    # Training made progress: the last logged losses are well below the first ones.
    assert result.train_loss[-1][1] < 0.5 * result.train_loss[0][1]
    assert np.isfinite(result.val_loss[-1][1]) and result.val_loss[-1][1] < result.val_loss[0][1]


@pytest.mark.parametrize("kind", KINDS)
def test_untrained_policy_fails_the_same_check(bimodal_store, kind):
    torch.manual_seed(0)
    policy = build_policy(tiny_config(kind), OBS_SHAPES, 2)
    store = EpisodeStore.open(bimodal_store)
    policy.fit_normalizer({"agent_pos": store.read_data("agent_pos")}, store.read_data("action"))
    fractions = TASK.mode_fractions(start_samples(policy.eval()))
    assert not passes_mode_check(fractions), fractions
    assert fractions["up"] + fractions["down"] < 0.3, fractions


def test_toy_demonstrations_are_balanced_and_go_around_the_obstacle(bimodal_store):
    store = EpisodeStore.open(bimodal_store)
    modes = store.meta("mode")
    assert store.n_episodes == 100 and set(np.unique(modes)) == {-1, 1}
    assert 0.35 < (modes == 1).mean() < 0.65
    pos, act = store.read_data("agent_pos"), store.read_data("action")
    assert pos.shape == act.shape == (100 * TASK.episode_len, 2)
    # Each action is the next position, and no demonstration comes near the obstacle.
    ep = store.episode(0)
    np.testing.assert_allclose(ep["action"][:-1], ep["agent_pos"][1:], atol=1e-6)
    assert np.linalg.norm(act, axis=1).min() > 0.8
    # The reference arcs pass the mode check; their average (straight into the obstacle) does not.
    refs = TASK.reference_chunks(8)
    assert passes_mode_check(TASK.mode_fractions(np.repeat(refs, 128, axis=0)))
    assert TASK.mode_fractions(np.repeat(refs.mean(0, keepdims=True), 256, axis=0))["middle"] == 1.0
