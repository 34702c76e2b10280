"""The shared training pieces: episode hold-out, early stopping, seeded RND networks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fiper.nn import mlp, orthogonal_init_
from fiper.scores.rnd_core import RNDNetworks
from fiper.scores.training import TrainConfig, episode_split, train


def test_episode_split_holds_out_whole_episodes():
    ends = np.cumsum([30, 10, 25, 5, 40, 12, 8, 20, 33, 17])
    tr, va = episode_split(ends, 0.2, seed=0)
    assert len(np.intersect1d(tr, va)) == 0 and len(tr) + len(va) == ends[-1]
    episode = np.searchsorted(ends, np.arange(ends[-1]), side="right")
    held = np.unique(episode[va])
    assert len(held) == 2 and not np.isin(episode[tr], held).any()
    np.testing.assert_array_equal(episode_split(ends, 0.2, seed=0)[1], va)  # seeded
    assert not np.array_equal(episode_split(ends, 0.2, seed=1)[1], va)


def test_episode_split_edge_cases():
    tr, va = episode_split(np.array([3, 50]), 0.1, seed=0)  # two episodes: one held out, one kept
    assert len(va) in (3, 47) and len(tr) == 50 - len(va)
    tr, va = episode_split(np.array([100]), 0.1, seed=0)  # one episode: a random 10 % of its decisions
    assert len(va) == 10 and len(tr) == 90
    tr, va = episode_split(np.array([20, 40]), 0.0, seed=0)
    assert len(va) == 0 and len(tr) == 40


def test_early_stopping_keeps_the_best_held_out_weights():
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    y = x @ torch.randn(4, 1)
    model = torch.nn.Linear(4, 1)
    # the held-out targets are the negated ones: training makes held-out loss worse after a while
    loss = lambda b, g: (model(b[0]) - b[1]).pow(2).mean()  # noqa: E731
    cfg = TrainConfig(lr=0.05, min_lr=0.05, max_epochs=200, patience=3, batch_size=16)
    result = train(model, loss, (x, y), (x, -y + 0.5 * y), cfg, seed=0)
    assert 3 < result.epochs < 200  # stopped early
    assert result.best_val == min(result.val_loss)
    model.eval()
    with torch.no_grad():
        restored = float((model(x) - (-0.5 * y)).pow(2).mean())
    assert restored == pytest.approx(result.best_val, rel=1e-5)


def test_train_config_validates_and_merges_defaults():
    assert TrainConfig.of({"max_epochs": 5}, lr=1e-3) == TrainConfig(lr=1e-3, max_epochs=5)
    assert TrainConfig.of({"lr": 1e-2}, lr=1e-3).lr == 1e-2
    with pytest.raises(ValueError, match="val_fraction"):
        TrainConfig(val_fraction=1.0)
    with pytest.raises(ValueError, match="min_lr"):
        TrainConfig(lr=1e-4, min_lr=1e-3)


def test_rnd_networks_orthogonal_init_and_frozen_target():
    nets = RNDNetworks(8, [16, 16], [16, 32, 16], 4).init_(seed=0)
    w = nets.target[0].weight.detach()  # (16, 8): orthonormal columns times gain sqrt(2)
    torch.testing.assert_close(w.T @ w, 2.0 * torch.eye(8), atol=1e-5, rtol=0)
    assert all(float(m.bias.detach().abs().max()) == 0 for m in nets.modules() if isinstance(m, torch.nn.Linear))
    assert not any(p.requires_grad for p in nets.target.parameters())
    assert all(p.requires_grad for p in nets.predictor.parameters())
    again = RNDNetworks(8, [16, 16], [16, 32, 16], 4).init_(seed=0)
    x = torch.randn(5, 8)
    torch.testing.assert_close(nets(x), again(x), rtol=0, atol=0)
    assert sum(isinstance(m, torch.nn.LeakyReLU) for m in nets.predictor) == 3


def test_mlp_rejects_bad_layers():
    with pytest.raises(ValueError, match="unknown activation"):
        mlp(3, [4], 2, activation="softplus2")
    with pytest.raises(ValueError, match=">= 1"):
        mlp(3, [0], 2)
    layer = orthogonal_init_(mlp(3, [], 3), gain=1.0)[0]
    torch.testing.assert_close(layer.weight.detach() @ layer.weight.detach().T, torch.eye(3), atol=1e-5, rtol=0)
    assert math.isclose(float(layer.bias.detach().abs().sum()), 0.0)
