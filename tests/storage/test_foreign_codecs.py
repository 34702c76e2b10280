"""Stores written the way diffusion_policy writes them (Jpeg2k images) open, read and train."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import zarr

from fiper.storage import EpisodeStore
from fiper.storage.errors import StoreError

imagecodecs_numcodecs = pytest.importorskip("imagecodecs.numcodecs")


def write_diffusion_policy_store(path, n_episodes=3, length=12, size=24, seed=0):
    """A ReplayBuffer as diffusion_policy writes it: zarr format 2, images chunked per frame and
    compressed with imagecodecs' Jpeg2k(level=50), low-dim keys with Blosc, meta/episode_ends."""
    rng = np.random.default_rng(seed)
    imagecodecs_numcodecs.register_codecs(verbose=False)
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    data, meta = root.require_group("data"), root.require_group("meta")
    steps = n_episodes * length
    # smooth images so a lossy codec at level 50 reconstructs them closely
    yy, xx = np.mgrid[:size, :size]
    phase = rng.uniform(0, 2 * np.pi, steps)[:, None, None]
    img = (127.5 * (1 + np.sin(xx[None] / 4.0 + phase) * np.cos(yy[None] / 5.0)))[..., None].repeat(3, -1).astype(np.uint8)
    arrays = {
        "img": (img, (1, size, size, 3), imagecodecs_numcodecs.Jpeg2k(level=50)),
        "agent_pos": (rng.normal(size=(steps, 2)).astype(np.float32), (steps, 2), None),
        "action": (rng.normal(size=(steps, 2)).astype(np.float32), (steps, 2), None),
    }
    for key, (values, chunks, compressor) in arrays.items():
        kwargs = {"compressor": compressor} if compressor is not None else {}
        data.create_array(key, shape=values.shape, chunks=chunks, dtype=values.dtype, **kwargs)[:] = values
    meta.create_array("episode_ends", shape=(n_episodes,), dtype="int64")[:] = np.arange(1, n_episodes + 1) * length
    return img


def test_jpeg2k_store_opens_and_reads_close_to_the_written_frames(tmp_path):
    written = write_diffusion_policy_store(tmp_path / "dp.zarr")
    with open(tmp_path / "dp.zarr" / "data" / "img" / ".zarray") as f:
        assert '"imagecodecs_jpeg2k"' in f.read()
    store = EpisodeStore.open(tmp_path / "dp.zarr")
    assert store.n_episodes == 3
    frames = np.asarray(store.root["data/img"][:])
    assert frames.shape == written.shape and frames.dtype == np.uint8
    assert np.abs(frames.astype(int) - written.astype(int)).mean() < 4.0  # lossy, but close


def test_missing_imagecodecs_is_an_error_naming_the_package(tmp_path, monkeypatch):
    write_diffusion_policy_store(tmp_path / "dp.zarr")
    monkeypatch.setitem(sys.modules, "imagecodecs.numcodecs", None)  # as if imagecodecs were not installed
    with pytest.raises(StoreError, match=r"data/img \(imagecodecs_jpeg2k\).*pip install 'fiper\[codecs\]'"):
        EpisodeStore.open(tmp_path / "dp.zarr")
    assert (tmp_path / "dp.zarr" / "data" / "img" / ".zarray").exists()  # nothing touched


def test_image_policy_trains_on_a_jpeg2k_store(tmp_path):
    from policies import train_policy
    from policies.toy_data import toy_policy_config, toy_train_config

    write_diffusion_policy_store(tmp_path / "dp.zarr")
    policy = toy_policy_config("diffusion", "mlp", encoder="image", obs_keys=["img", "agent_pos"], image_channels=[8, 8],
                               image_keypoints=4, n_groups=4)
    result = train_policy(tmp_path / "dp.zarr", toy_train_config(policy, 3, device="cpu", progress=False), tmp_path / "policy")
    assert result.step == 3 and all(np.isfinite(loss) for _, loss in result.train_loss)
    assert result.policy.obs_shapes["img"] == (24, 24, 3)
