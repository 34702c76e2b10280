"""sampling='chunked' trains on every window once per epoch, and a resumed run draws the batches the uninterrupted run draws."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from policy_helpers import TASK, tiny_config, tiny_train_config

from fiper.storage import EpisodeStore, TrainingWindows
from policies import TrainConfig, train_policy
from policies.toy_data import make_bimodal_demos


@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("demos") / "small.zarr"
    make_bimodal_demos(path, n_episodes=6, task=TASK, seed=0)
    return path


def test_chunked_sampling_uses_every_window_once_per_epoch(small_store, tmp_path, monkeypatch):
    seen: list[np.ndarray] = []
    batch = TrainingWindows.batch
    monkeypatch.setattr(TrainingWindows, "batch", lambda self, idx: (seen.append(np.asarray(idx)), batch(self, idx))[1])
    n = EpisodeStore.open(small_store).n_steps
    steps = -(-3 * n // 16)  # three epochs and a part of the fourth
    train_policy(small_store, tiny_train_config(tiny_config("flow"), steps, batch_size=16, val_fraction=0.0, sampling="chunked"),
                 tmp_path / "run")
    drawn = np.concatenate(seen)
    assert len(drawn) == steps * 16
    for epoch in range(3):
        np.testing.assert_array_equal(np.sort(drawn[epoch * n:(epoch + 1) * n]), np.arange(n))
    assert len(np.unique(drawn[3 * n:])) == len(drawn) - 3 * n


def test_the_next_batch_is_read_while_a_step_runs(small_store, tmp_path, monkeypatch):
    from policies.base import ChunkPolicy

    cond, reads, overlapped = threading.Condition(), [], []
    batch, loss = TrainingWindows.batch, ChunkPolicy.compute_loss

    def counted_batch(self, idx):
        with cond:
            reads.append(len(idx))
            cond.notify_all()
        return batch(self, idx)

    def compute_loss(self, *args, **kwargs):
        step = len(overlapped) + 1
        with cond:  # the batch of the step after this one is read meanwhile
            overlapped.append(cond.wait_for(lambda: len(reads) > step, timeout=5))
        return loss(self, *args, **kwargs)

    monkeypatch.setattr(TrainingWindows, "batch", counted_batch)
    monkeypatch.setattr(ChunkPolicy, "compute_loss", compute_loss)
    train_policy(small_store, tiny_train_config(tiny_config("flow"), 4, batch_size=8, val_fraction=0.0), tmp_path / "run")
    assert overlapped == [True, True, True, False]  # the last step has no next batch


def test_a_resumed_chunked_run_trains_as_the_uninterrupted_one(small_store, tmp_path):
    config = tiny_train_config(tiny_config("diffusion"), 8, batch_size=16, val_every=4, sampling="chunked")
    train_policy(small_store, config, tmp_path / "run", stop_at=5)
    resumed = train_policy(small_store, config, tmp_path / "run", resume=True)
    straight = train_policy(small_store, config, tmp_path / "straight")
    for key, value in straight.policy.state_dict().items():
        torch.testing.assert_close(resumed.policy.state_dict()[key], value, msg=key)


def test_an_unknown_sampling_is_refused_naming_both_choices():
    with pytest.raises(ValueError, match="sampling.*'uniform'.*'chunked'"):
        TrainConfig(sampling="random")


def test_memory_limit_and_cache_bytes_reach_the_training_windows_and_uniform_draws_train_the_same(small_store, tmp_path, monkeypatch):
    """Columns on disk through a small cache train exactly as in memory (uniform draws read the same windows)."""
    made: list[TrainingWindows] = []
    init = TrainingWindows.__init__
    monkeypatch.setattr(TrainingWindows, "__init__", lambda self, *a, **kw: (made.append(self), init(self, *a, **kw))[1])
    config = tiny_train_config(tiny_config("flow"), 4, batch_size=8, val_fraction=0.0)
    on_disk = train_policy(small_store, tiny_train_config(tiny_config("flow"), 4, batch_size=8, val_fraction=0.0, memory_limit=0,
                                                          cache_bytes=1 << 12), tmp_path / "disk")
    assert sorted(made[-1].on_disk) == ["action", "agent_pos"] and made[-1].cache.max_bytes == 1 << 12
    in_memory = train_policy(small_store, config, tmp_path / "memory")
    assert made[-1].on_disk == []
    for key, value in in_memory.policy.state_dict().items():
        torch.testing.assert_close(on_disk.policy.state_dict()[key], value, msg=key)
    with pytest.raises(ValueError, match=r"memory_limit.*bytes >= 0"):
        TrainConfig(memory_limit=-1)
