"""A store takes one writer at a time: a second process appending to it (two sweep jobs given the same
``out``) is refused naming the holder, instead of overwriting the holder's episodes while both report success."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fiper.control import RolloutRecorder
from fiper.storage import EpisodeStore, StoreError
from fiper.storage.merge import MergeError, merge_stores
from fiper.storage.repair import repair_store
from fiper.storage.writer_lock import StoreBusyError

ROOT = Path(__file__).resolve().parents[2]
# Holds the store open for appending (a running sweep job) until its stdin closes.
HOLDER = ("import sys; from fiper.storage import EpisodeStore; s = EpisodeStore.open(sys.argv[1], mode='a'); "
          "print('holding', flush=True); sys.stdin.read()")


def _episode(store: EpisodeStore, seed: int) -> None:
    store.append_episode({"obs": np.full((3, 2), seed, np.float32)}, meta={"seed": seed})


def _holder(path: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert proc.stdout.readline().strip() == "holding"
    return proc


def test_a_second_writer_is_refused_and_the_first_keeps_every_episode(tmp_path):
    path = tmp_path / "s.zarr"
    _episode(EpisodeStore.create(path), 0)
    holder = _holder(path)
    try:
        for attempt in (lambda: EpisodeStore.open(path, mode="a"), lambda: EpisodeStore.create(path, overwrite=True),
                        lambda: RolloutRecorder(path)):
            with pytest.raises(StoreBusyError, match=rf"being written by another process \(pid {holder.pid} .*its own store"):
                attempt()
        assert EpisodeStore.open(path).n_episodes == 1  # readers are never blocked; overwrite deleted nothing
    finally:
        holder.communicate("")
    store = EpisodeStore.open(path, mode="a")  # the lock went with its process
    _episode(store, 1)
    assert list(EpisodeStore.open(path).meta("seed")) == [0, 1]


def test_a_store_created_meanwhile_by_another_writer_is_named_busy(tmp_path):
    """Two jobs that both found no store at ``out``: the later one's create (at its first episode) names the writer,
    not a bare 'already exists'."""
    path = tmp_path / "s.zarr"
    _episode(EpisodeStore.create(path), 0)
    holder = _holder(path)
    try:
        with pytest.raises(StoreBusyError, match="one writer at a time"):
            EpisodeStore.create(path)
    finally:
        holder.communicate("")
    with pytest.raises(Exception, match="already exists"):  # no writer left: the store is simply there
        EpisodeStore.create(path)


def test_one_process_may_open_its_own_store_twice(tmp_path):
    path = tmp_path / "s.zarr"
    first = EpisodeStore.create(path)
    _episode(first, 0)
    second = EpisodeStore.open(path, mode="a")
    del first
    _episode(second, 1)
    assert EpisodeStore.open(path).n_episodes == 2


def test_a_merge_refuses_a_store_still_being_written(tmp_path):
    """Merging while a job still records would silently leave out its later episodes."""
    path = tmp_path / "s.zarr"
    _episode(EpisodeStore.create(path), 0)
    holder = _holder(path)
    try:
        with pytest.raises(MergeError, match=rf"still being written: .*s\.zarr \(pid {holder.pid} .*has finished"):
            merge_stores([path], tmp_path / "merged.zarr")
        assert not (tmp_path / "merged.zarr").exists()
    finally:
        holder.communicate("")


def test_an_in_place_repair_waits_for_the_writer(tmp_path):
    """Swapping the repaired copy in under a running writer would send that writer's next episodes to the backup."""
    path = tmp_path / "s.zarr"
    _episode(EpisodeStore.create(path), 0)
    (path / "data" / "obs" / "0.0").write_bytes(b"garbled")
    holder = _holder(path)
    try:
        with pytest.raises(StoreError, match=rf"being written by another process \(pid {holder.pid} .*out=<new path>"):
            repair_store(path)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["s.zarr"]  # no backup, no copy
    finally:
        holder.communicate("")


def test_a_filesystem_that_refuses_flock_writes_the_store_unlocked(tmp_path, monkeypatch):
    """flock failing with another error than 'held' (ENOLCK on a mount without locking) must not stop the store."""
    import errno

    from fiper.storage import writer_lock

    def refuse(handle, flags):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(writer_lock.fcntl, "flock", refuse)
    store = EpisodeStore.create(tmp_path / "s.zarr")
    store.append_episode({"action": np.zeros((3, 2), np.float32)})
    assert EpisodeStore.open(tmp_path / "s.zarr", mode="a").n_episodes == 1
