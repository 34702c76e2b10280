"""Detecting damaged store bytes: per-episode checksums, chunk files of rows, metadata that fails to parse.

Blosc has no checksum, so a flipped byte inside a chunk may decompress into wrong values. Every
appended episode therefore records a crc32 of its rows of every array (``meta/episode_checksums``,
one json record per episode); reads that cover whole episodes compare against it.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
import zarr

CHECKSUM_KEY = "episode_checksums"
METADATA_FILES = (".zarray", ".zgroup", ".zattrs")


def digest(rows: Any) -> int:
    """crc32 of an array's values with its dtype and shape (text arrays: their utf-8 text)."""
    arr = np.asarray(rows)
    if arr.dtype.kind in "UOT":
        header = f"str{arr.shape}".encode()
        return zlib.crc32("\x1f".join(str(x) for x in arr.reshape(-1).tolist()).encode("utf-8", "surrogatepass"), zlib.crc32(header))
    arr = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<") if arr.dtype.byteorder != "|" else arr.dtype)
    header = f"{arr.dtype.str}{arr.shape}".encode()
    return zlib.crc32(memoryview(arr).cast("B"), zlib.crc32(header))


def encode_record(n_steps: int, n_decisions: int, crcs: Mapping[str, int]) -> str:
    return json.dumps({"steps": int(n_steps), "decisions": int(n_decisions), "crc32": {k: int(v) for k, v in sorted(crcs.items())}},
                      separators=(",", ":"))


def parse_record(text: str) -> dict[str, Any] | None:
    """A checksum record, or None for an episode recorded without one (fill value ''); raises ValueError if garbled."""
    if not text:
        return None
    record = json.loads(text)
    if not (isinstance(record, dict) and isinstance(record.get("crc32"), dict) and "steps" in record and "decisions" in record):
        raise ValueError(f"not a checksum record: {text[:80]!r}")
    return record


# ---------------------------------------------------------------- chunk files
def array_dir(root: Path, name: str) -> Path:
    return root.joinpath(*name.split("/"))


def chunk_file(arr: zarr.Array, first_axis_index: int, rest: Iterable[int] = ()) -> str:
    rest = list(rest) or [0] * (arr.ndim - 1)
    return arr.metadata.dimension_separator.join(str(i) for i in [first_axis_index, *rest])


def chunk_files_for_rows(arr: zarr.Array, start: int, stop: int) -> list[tuple[int, str]]:
    """(chunk index along time, file name) of every chunk holding rows [start, stop)."""
    if stop <= start:
        return []
    c = arr.chunks[0]
    grid = [-(-s // k) for s, k in zip(arr.shape[1:], arr.chunks[1:])]
    return [(i, chunk_file(arr, i, rest)) for i in range(start // c, -(-stop // c)) for rest in np.ndindex(*grid)]


def missing_chunk_files(root: Path, name: str, arr: zarr.Array, rows: int) -> list[tuple[int, str]]:
    """Chunks of the first ``rows`` rows of ``name`` whose files are absent."""
    directory = array_dir(root, name)
    present = set(os.listdir(directory)) if directory.is_dir() else set()
    return [(i, f) for i, f in chunk_files_for_rows(arr, 0, rows) if f not in present]


def undecodable_chunks(arr: zarr.Array, start: int, stop: int) -> list[tuple[int, str]]:
    """Chunks holding rows [start, stop) that fail to read on their own (the culprits of a failed read)."""
    bad, c = [], arr.chunks[0]
    for i in sorted({i for i, _ in chunk_files_for_rows(arr, start, stop)}):
        try:
            arr[i * c : min((i + 1) * c, arr.shape[0])]
        except Exception:
            bad.extend(x for x in chunk_files_for_rows(arr, i * c, i * c + 1))
    return bad


def entry_past_shape(directory: Path, commit: zarr.Array, ends: np.ndarray) -> bool:
    """Whether the commit record's chunk holds an episode end past its recorded shape: the shape in
    its metadata was lowered (an interrupted commit resizes first, so it never leaves one)."""
    n, c = len(ends), commit.chunks[0]
    chunk = directory / chunk_file(commit, n // c)
    if not chunk.is_file():
        return False
    try:
        meta = json.loads((directory / ".zarray").read_text())
        raw = numcodecs.get_codec(meta["compressor"]).decode(chunk.read_bytes()) if meta.get("compressor") else chunk.read_bytes()
        values = np.frombuffer(raw, dtype=meta["dtype"])
    except Exception:
        return False  # a chunk that does not decode is reported by the read of the record itself
    last = int(ends[-1]) if n else 0
    return bool(n % c < len(values) and values[n % c] > last)


# ---------------------------------------------------------------- metadata
def broken_metadata(root: Path) -> list[str]:
    """Metadata files under ``root`` that do not parse as json objects, and array / group folders
    that lost theirs (a folder zarr would silently skip), as paths relative to ``root``."""
    out = []
    for directory, subdirs, files in os.walk(root):
        rel = Path(directory).relative_to(root)
        for name in METADATA_FILES:
            if name in files:
                try:
                    if not isinstance(json.loads((Path(directory) / name).read_text()), dict):
                        out.append(str(rel / name))
                except (ValueError, UnicodeDecodeError, OSError):
                    out.append(str(rel / name))
        if ".zarray" not in files and ".zgroup" not in files and rel.parts and rel.parts[0] in ("data", "decisions", "meta"):
            has_chunks = any(not f.startswith(".") for f in files)
            if has_chunks or subdirs or ".zattrs" in files:
                out.append(str(rel) + "/ (no .zarray or .zgroup)")
    return sorted(out)
