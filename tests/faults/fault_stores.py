"""A small real rollout store (written with EpisodeStore) and helpers to damage its files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from numcodecs import Blosc

from fiper.storage import EpisodeStore

FRAME = 4096  # float32 values per step of data/frame: 16 KiB rows, 64 rows per 1 MiB chunk


def write_store(path: Path, lengths=(70, 50, 90, 40), *, frames: bool = True) -> list[dict]:
    """Episodes of data (action, optionally large compressible frames), decisions and labels; returns
    what was written, per episode, as {'data': ..., 'decisions': ..., 'meta': ...}."""
    rng = np.random.default_rng(0)
    store = EpisodeStore.create(path, attrs={"task": "faults"})
    written = []
    for e, t in enumerate(lengths):
        n = -(-t // 8)
        data = {"action": rng.normal(size=(t, 2)).astype(np.float32)}
        if frames:
            data["frame"] = np.repeat(np.arange(t, dtype=np.float32)[:, None] + 1000 * e, FRAME, axis=1)
        decisions = {
            "embedding": rng.normal(size=(n, 6)).astype(np.float32),
            "samples": rng.normal(size=(n, 4, 3, 2)).astype(np.float16),
            "score/ace": rng.random(n),
            "reason": np.array([f"r{e}.{k}" for k in range(n)]),
        }
        meta = {"success": e % 2 == 0, "seed": 100 + e, "shift": "none" if e < 2 else "obstacle", "severity": 0.25 * e}
        store.append_episode(data, decisions=decisions, meta=meta)
        written.append({"data": data, "decisions": decisions, "meta": meta})
    return written


def chunk_files(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))


def rewrite_chunk(chunk: Path, edit) -> None:
    """Decode a chunk, change its values with ``edit(values)``, and write a valid Blosc encoding
    back: damage that still decompresses (blosc keeps no checksum)."""
    meta = json.loads((chunk.parent / ".zarray").read_text())
    values = np.frombuffer(Blosc().decode(chunk.read_bytes()), dtype=meta["dtype"]).reshape(meta["chunks"]).copy()
    edit(values)
    codec = Blosc(cname="lz4", clevel=5, shuffle=Blosc.BITSHUFFLE if values.dtype.itemsize > 1 else Blosc.NOSHUFFLE)
    chunk.write_bytes(codec.encode(values))


def read_everything(path: Path) -> dict:
    """Every committed episode's steps, decisions and labels, read through EpisodeStore."""
    store = EpisodeStore.open(path)
    return {
        "n": store.n_episodes,
        "episodes": [
            {"data": store.episode(i), "decisions": store.episode_decisions(i), "meta": {k: store.meta(k)[i] for k in store.meta_keys}}
            for i in range(store.n_episodes)
        ],
    }


def assert_same_episode(got: dict, want: dict) -> None:
    for part in ("data", "decisions"):
        assert sorted(got[part]) == sorted(want[part])
        for k, v in want[part].items():
            np.testing.assert_array_equal(got[part][k], v, err_msg=f"{part}/{k}")
    assert sorted(got["meta"]) == sorted(want["meta"])
    for k, v in want["meta"].items():
        assert got["meta"][k] == v, k
