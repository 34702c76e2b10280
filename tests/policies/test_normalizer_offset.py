"""Large-offset float64 columns (1e6 + small moves, unix times) are normalised in float64 and train like centred ones."""

from __future__ import annotations

import numpy as np
import torch
from policy_helpers import tiny_config, tiny_train_config

from fiper.storage import EpisodeStore
from policies import load_policy, train_policy
from policies.normalizer import PolicyNormalizer, RangeNormalizer


def test_a_large_offset_column_normalises_to_distinct_values_and_round_trips():
    moves = np.linspace(0.0, 0.05, 101)  # 0.5 mm steps, far below float32's 0.0625 spacing at 1e6
    column = (1e6 + moves)[:, None]
    norm = RangeNormalizer(1)
    norm.fit(column)
    assert float(norm.center[0]) == 1e6 + 0.025
    got = norm.normalize(torch.from_numpy(column))
    assert got.dtype == torch.float32 and len(torch.unique(got)) == 101
    np.testing.assert_allclose(got[:, 0].numpy(), np.linspace(-1, 1, 101), atol=1e-6)
    back = norm.unnormalize(got.double())
    assert float((back - torch.from_numpy(column)).abs().max()) < 1e-7


def test_policy_normalizer_reads_float64_observations_and_actions_before_the_cast():
    t = np.arange(50, dtype=np.float64)
    obs = {"stamp": (1.7e9 + 0.01 * t)[:, None]}  # a unix-time-like column, 10 ms apart
    action = np.stack([1e6 + 0.001 * t, 0.1 * t], axis=1)
    norm = PolicyNormalizer({"stamp": (1,)}, action_dim=2)
    norm.fit(obs, action)
    stamps = norm.normalize_obs({"stamp": torch.from_numpy(obs["stamp"])[None, :, :]})["stamp"][0, :, 0]
    np.testing.assert_allclose(stamps.numpy(), np.linspace(-1, 1, 50), atol=1e-6)
    np.testing.assert_allclose(norm.action.normalize(torch.from_numpy(action)).numpy(),
                               np.stack([np.linspace(-1, 1, 50)] * 2, axis=1), atol=1e-6)


def _store(path, offset: float) -> None:
    rng = np.random.default_rng(0)
    store = EpisodeStore.create(path)
    for _ in range(6):
        pos = np.cumsum(rng.normal(scale=0.01, size=(12, 2)), axis=0)
        store.append_episode({"pos": offset + pos, "action": pos[:, ::-1].copy()})


def test_a_column_offset_by_a_million_trains_like_the_centred_one(tmp_path):
    _store(tmp_path / "centred.zarr", 0.0)
    _store(tmp_path / "offset.zarr", 1e6)
    assert EpisodeStore.open(tmp_path / "offset.zarr").data_array("pos").dtype == np.float64
    config = tiny_train_config(tiny_config("flow"), 20, batch_size=8, val_every=10, val_fraction=0.0)
    centred = train_policy(tmp_path / "centred.zarr", config, tmp_path / "run_centred")
    offset = train_policy(tmp_path / "offset.zarr", config, tmp_path / "run_offset")
    np.testing.assert_allclose([loss for _, loss in offset.train_loss], [loss for _, loss in centred.train_loss], rtol=1e-3)
    for key, value in centred.policy.model.state_dict().items():
        torch.testing.assert_close(offset.policy.model.state_dict()[key], value, atol=1e-4, rtol=1e-3, msg=key)
    assert centred.policy.normalizer.obs["pos"].center.dtype == torch.float32  # an ordinary centre keeps its format
    loaded = load_policy(tmp_path / "run_offset", "cpu")
    assert loaded.normalizer.obs["pos"].center.dtype == torch.float64
    assert torch.equal(loaded.normalizer.obs["pos"].center, offset.policy.normalizer.obs["pos"].center)
