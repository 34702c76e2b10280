"""Array creation and naming for the diffusion_policy ReplayBuffer layout, zarr format 2.

Chunks are time-major and about ``TARGET_CHUNK_BYTES`` each so sequential reads decompress few
large blocks; Blosc-LZ4 decompresses fastest, bit-shuffle helps float columns compress.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import zarr
from numcodecs import Blosc

from fiper.storage.errors import StoreError
from fiper.storage.integrity import CHECKSUM_KEY

TARGET_CHUNK_BYTES = 1 << 20
MAX_CHUNK_LEN = 1 << 16
# Chunks that equal the fill value are written too, so a missing chunk file always means data loss.
WRITE_ALL_CHUNKS = {"write_empty_chunks": True}
# meta/<COMMIT_KEY>: each committed episode's cumulative end row; an episode exists once its entry is written.
COMMIT_KEY = "episode_ends"
GROUPS = ("data", "decisions", "meta")
DECISION_ENDS_KEY = "decision_ends"  # meta/<DECISION_ENDS_KEY>: each episode's cumulative end decision
INTERNAL_META = (COMMIT_KEY, DECISION_ENDS_KEY, CHECKSUM_KEY)  # the store's own meta keys, not labels


def write_all_chunks(array: zarr.Array) -> zarr.Array:
    """``array`` configured with WRITE_ALL_CHUNKS (no I/O: the same metadata and store path)."""
    if hasattr(array, "with_config"):  # zarr >= 3.1.6
        return array.with_config(WRITE_ALL_CHUNKS)
    # Older zarr 3 releases read an array's runtime config from zarr.config when its object is built.
    with zarr.config.set({f"array.{key}": value for key, value in WRITE_ALL_CHUNKS.items()}):
        return zarr.Array(zarr.AsyncArray(metadata=array.metadata, store_path=array.store_path))


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
        return write_all_chunks(group.create_array(name, shape=(0,), chunks=(4096,), dtype=str))
    dtype = sample.dtype
    return write_all_chunks(group.create_array(
        name,
        shape=(0, *item_shape),
        chunks=(time_chunk_len(item_shape, dtype), *item_shape),
        dtype=dtype,
        compressors=compressor_for(dtype),
        fill_value=0,
    ))


def unstorable_name(names: Iterable[str]) -> tuple[str, str] | None:
    """The first of ``names`` that a store would write under another name or refuses, with why; None when all fit.

    '/' nests (``robot/arm`` is the array ``arm`` in the group ``robot``, read back as ``robot/arm``), so an empty
    segment (a leading, trailing or doubled '/') would be read back as another name, '.' and '..' segments are refused,
    and a name below another name (``cam`` and ``cam/depth``) cannot be both an array and a group."""
    names = [str(n) for n in names]
    for name in names:
        segments = name.split("/")
        if "" in segments:
            return name, ("is empty" if name == "" else
                          "has an empty path segment (a leading, trailing or doubled '/'), so it would be read back as another name")
        if any(s in (".", "..") for s in segments):
            return name, "has a '.' or '..' path segment, which zarr refuses"
    given = set(names)
    for name in names:
        segments = name.split("/")
        for end in range(1, len(segments)):
            parent = "/".join(segments[:end])
            if parent in given:
                return name, f"lies below the name {parent!r} ('/' nests names in the store, and {parent!r} is an array of its own)"
    return None


def refuse_unstorable(groups: Mapping[str, Iterable[str]]) -> None:
    """A StoreError naming the first name of ``{group: names}`` that a store cannot hold as given."""
    for group, names in groups.items():
        if bad := unstorable_name(names):
            raise StoreError(f"{group} key {bad[0]!r} {bad[1]}; give it another name; nothing was written")
