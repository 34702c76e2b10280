"""TrainingWindows on columns read from disk: the chunk cache, its bound, and the chunk-by-chunk epoch order."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from fiper.storage import EpisodeStore, TrainingWindows

SIDE = 64  # 12 KiB frames: the writer's 1 MiB chunks hold 85 of them
EPISODES, STEPS = 12, 70


@pytest.fixture(scope="module")
def image_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("images") / "images.zarr"
    store = EpisodeStore.create(path)
    rng = np.random.default_rng(0)
    for e in range(EPISODES):
        t = np.arange(STEPS)
        image = rng.integers(0, 255, (STEPS, SIDE, SIDE, 3), dtype=np.uint8)
        image[:, 0, 0, 0], image[:, 0, 0, 1] = e, t  # the episode and step, readable from each frame
        store.append_episode({"image": image, "agent_pos": rng.normal(size=(STEPS, 2)).astype(np.float32),
                              "action": np.stack([t + 1000 * e, t], 1).astype(np.float32)})
    return EpisodeStore.open(path)


def _windows(store, cache_chunks=4, **kwargs):
    chunk = store.data_array("image").chunks[0] * SIDE * SIDE * 3
    return TrainingWindows(store, ["image", "agent_pos"], 2, 4, cache_bytes=cache_chunks * chunk, **kwargs)


def test_only_the_columns_that_do_not_fit_are_read_from_disk(image_store):
    image = image_store.n_steps * SIDE * SIDE * 3
    windows = _windows(image_store, memory_limit=image // 2)
    assert windows.on_disk == ["image"]  # agent_pos and action are small: held in memory
    assert _windows(image_store, memory_limit=2 * image).on_disk == []
    assert _windows(image_store, in_memory=False).on_disk == ["image", "agent_pos", "action"]


def test_cached_and_row_reads_match_the_columns_in_memory(image_store):
    lazy, eager = _windows(image_store, in_memory=False), _windows(image_store, in_memory=True)
    rng = np.random.default_rng(1)
    for idx in [rng.integers(0, len(lazy), 8), rng.integers(0, len(lazy), 256), lazy.epoch_order(rng)[:64]]:
        (lo, la), (eo, ea) = lazy.batch(idx), eager.batch(idx)
        np.testing.assert_array_equal(lo["image"], eo["image"])
        np.testing.assert_array_equal(lo["agent_pos"], eo["agent_pos"])
        np.testing.assert_array_equal(la, ea)


def test_epoch_order_visits_every_window_once_and_decodes_each_chunk_about_once(image_store):
    windows = _windows(image_store, in_memory="auto", memory_limit=1 << 20)
    assert windows.on_disk == ["image"]
    c = image_store.data_array("image").chunks[0]
    n_chunks = -(-image_store.n_steps // c)
    counts = np.zeros(len(windows), dtype=int)
    for epoch in range(3):
        order = windows.epoch_order(np.random.default_rng([0, epoch]))
        counts[order] += 1
        for start in range(0, len(order), 32):
            windows.batch(order[start:start + 32])
            assert windows.cache.nbytes <= windows.cache.max_bytes
    assert (counts == 3).all()  # uniform: every window once per epoch
    assert windows.chunk_reads <= 3 * 2 * n_chunks  # each chunk, and at most once more for the history of a block's first step
    uniform = _windows(image_store, in_memory="auto", memory_limit=1 << 20)
    rng = np.random.default_rng(0)
    for _ in range(3 * len(order) // 32):
        uniform.batch(rng.integers(0, len(uniform), 32))
    assert uniform.chunk_reads > 4 * windows.chunk_reads


def test_epoch_order_shuffles_pools_of_chunks_and_is_a_plain_permutation_in_memory(image_store):
    windows = _windows(image_store, cache_chunks=8, in_memory="auto", memory_limit=1 << 20)
    c = image_store.data_array("image").chunks[0]
    order = windows.epoch_order(np.random.default_rng(0))
    blocks = windows.indices(order)[0][:, -1] // c  # the chunk of each window's step, in visiting order
    _, first = np.unique(blocks, return_index=True)
    rank = np.empty(blocks.max() + 1, dtype=int)
    rank[blocks[np.sort(first)]] = np.arange(len(first))
    pools = rank[blocks] // 4  # a pool: the chunks that fill half the cache
    assert (np.diff(pools) >= 0).all() and pools[-1] > 0
    assert (np.diff(blocks[pools == 0]) != 0).sum() > 8  # the windows of a pool's chunks are shuffled together
    assert not np.array_equal(order, windows.epoch_order(np.random.default_rng(1)))
    eager = _windows(image_store, in_memory=True)
    np.testing.assert_array_equal(eager.epoch_order(np.random.default_rng(2)), np.random.default_rng(2).permutation(len(eager)))


def test_a_batch_whose_chunks_exceed_the_cache_reads_rows_and_keeps_the_bound(image_store):
    windows = _windows(image_store, cache_chunks=2, in_memory="auto", memory_limit=1 << 20)
    windows.batch(np.arange(0, len(windows), 50))  # touches every chunk
    assert windows.chunk_reads == -(-image_store.n_steps // image_store.data_array("image").chunks[0])
    assert windows.cache.nbytes <= windows.cache.max_bytes and len(windows.cache) == 0


def test_frames_chunked_one_by_one_are_decoded_about_once_per_epoch(tmp_path):
    """diffusion_policy's image layout: the history frame of a window is decoded with its block, not a second time."""
    root = zarr.open_group(str(tmp_path / "dp.zarr"), mode="w", zarr_format=2)
    n, side = 400, 32
    images = np.random.default_rng(0).integers(0, 255, (n, side, side, 3), dtype=np.uint8)
    root.require_group("data").create_array("img", shape=images.shape, chunks=(1, side, side, 3), dtype="uint8")[:] = images
    for key in ("agent_pos", "action"):
        root["data"].create_array(key, shape=(n, 2), chunks=(n, 2), dtype="float32")[:] = 1
    root.require_group("meta").create_array("episode_ends", shape=(8,), dtype="int64")[:] = np.arange(1, 9) * 50
    store = EpisodeStore.open(tmp_path / "dp.zarr")
    chunked, uniform = (TrainingWindows(store, ["img"], 2, 4, memory_limit=1 << 12, cache_bytes=c) for c in (768 << 10, 0))
    order, rng = chunked.epoch_order(np.random.default_rng(0)), np.random.default_rng(0)
    for start in range(0, n, 16):
        np.testing.assert_array_equal(chunked.batch(order[start:start + 16])[0]["img"][:, -1], images[order[start:start + 16]])
        uniform.batch(rng.integers(0, n, 16))
    assert chunked.on_disk == ["img"] and chunked.chunk_reads <= 1.15 * n
    assert uniform.chunk_reads > 1.7 * n  # uniform windows without a cache: the frame and its history frame, apart
