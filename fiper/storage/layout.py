"""Array creation for the diffusion_policy ReplayBuffer layout, zarr format 2.

Chunks are time-major and about ``TARGET_CHUNK_BYTES`` each so sequential reads decompress few
large blocks; Blosc-LZ4 decompresses fastest, bit-shuffle helps float columns compress.
"""

from __future__ import annotations

import numpy as np
import zarr
from numcodecs import Blosc

TARGET_CHUNK_BYTES = 1 << 20
MAX_CHUNK_LEN = 1 << 16
# Chunks that equal the fill value are written too, so a missing chunk file always means data loss.
WRITE_ALL_CHUNKS = {"write_empty_chunks": True}
# meta/<COMMIT_KEY>: each committed episode's cumulative end row; an episode exists once its entry is written.
COMMIT_KEY = "episode_ends"


def time_chunk_len(item_shape: tuple[int, ...], dtype: np.dtype) -> int:
    """Number of time steps per chunk so one chunk is about TARGET_CHUNK_BYTES."""
    item_bytes = max(1, int(np.prod(item_shape, dtype=np.int64)) * np.dtype(dtype).itemsize)
    return int(np.clip(TARGET_CHUNK_BYTES // item_bytes, 1, MAX_CHUNK_LEN))


def compressor_for(dtype: np.dtype) -> Blosc:
    shuffle = Blosc.BITSHUFFLE if np.dtype(dtype).itemsize > 1 else Blosc.NOSHUFFLE
    return Blosc(cname="lz4", clevel=5, shuffle=shuffle)


def create_time_array(group: zarr.Group, name: str, sample: np.ndarray) -> zarr.Array:
    """Create an empty (0, *item_shape) array shaped after ``sample`` (whose axis 0 is time)."""
    item_shape = tuple(sample.shape[1:])
    if sample.dtype.kind in "UO":
        return group.create_array(name, shape=(0,), chunks=(4096,), dtype=str).with_config(WRITE_ALL_CHUNKS)
    dtype = sample.dtype
    return group.create_array(
        name,
        shape=(0, *item_shape),
        chunks=(time_chunk_len(item_shape, dtype), *item_shape),
        dtype=dtype,
        compressors=compressor_for(dtype),
        fill_value=0,
    ).with_config(WRITE_ALL_CHUNKS)
