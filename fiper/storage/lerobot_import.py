"""Demonstrations recorded as a LeRobotDataset (lerobot's format, codebase v2.x and v3.0) as a fiper store.

A local dataset directory (``meta/info.json``, ``data/**/*.parquet``, ``videos/...``) becomes a demonstration
store: every feature but lerobot's bookkeeping columns is one ``data/<key>`` array (``observation.`` dropped from
the name unless ``keys`` maps it), camera videos are decoded to uint8 (H, W, C) frames, float64 features stay
float64, and so do features the parquet stores as float64 that info.json declares float32 (an offset of 1e5 keeps
its millimetres), ``next.success`` gives ``meta/success``, and ``1 / fps`` the
control period (checked by fiper.control.period; ``control_period_s`` states it where ``fps`` is wrong). The store
is written whole or not at all (fiper.storage.building): a video that ends early or an episode missing frames leaves
``out`` as it was. Policies train on it and monitors replay on it as on demonstrations fiper collected. Reads
parquet with pyarrow and videos with imageio's ffmpeg (AV1 included).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fiper.storage.building import build_store, check_out
from fiper.storage.import_names import store_names
from fiper.storage.store import EpisodeStore

#: lerobot's per-frame bookkeeping columns, not observations or actions (nor are 'string' features, left out too).
BOOKKEEPING = ("timestamp", "frame_index", "episode_index", "index", "task_index")
LABELS = ("next.reward", "next.done", "next.success")  # per-frame labels: next.success becomes meta/success
VERSIONS = ("v2.0", "v2.1", "v3.0")


class LeRobotImportError(ValueError):
    """A directory that is not a readable LeRobotDataset, or one fiper cannot store as it is."""


def _read_info(root: Path) -> dict[str, Any]:
    path = root / "meta" / "info.json"
    if not path.is_file():
        raise LeRobotImportError(f"{root} holds no meta/info.json, so it is not a LeRobotDataset directory; give the local "
                                 "directory of one (with meta/, data/ and, for cameras, videos/)")
    info = json.loads(path.read_text())
    version = str(info.get("codebase_version", ""))
    if version not in VERSIONS:
        raise LeRobotImportError(f"{path}: codebase_version {version!r} is not one fiper reads ({', '.join(VERSIONS)}); convert "
                                 "the dataset with lerobot's own conversion script first")
    if "action" not in info.get("features", {}):
        raise LeRobotImportError(f"{path} declares no 'action' feature (features: {sorted(info.get('features', {}))}); fiper's "
                                 "policies learn the action from the observations")
    return info


def store_key_default(feature: str) -> str:
    """The fiper data key of a lerobot feature ``keys`` does not name: its name without 'observation.'."""
    return feature.removeprefix("observation.")


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise LeRobotImportError("reading a LeRobotDataset's parquet files needs pyarrow: pip install 'fiper[lerobot]'") from None
    return pyarrow


def _table(root: Path, columns: list[str]):
    pa = _pyarrow()
    pq = pa.parquet

    files = sorted((root / "data").rglob("*.parquet"))
    if not files:
        raise LeRobotImportError(f"{root}/data holds no parquet file; the dataset's frames are missing (download it whole)")
    return pa.concat_tables([pq.read_table(f, columns=columns) for f in files], promote_options="default")


def _column(table: Any, name: str, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """One feature's column as an (N, *shape) array: a list column flattened, a scalar column as it is."""
    import pyarrow as pa

    col = table.column(name).combine_chunks()
    while pa.types.is_list(col.type) or pa.types.is_fixed_size_list(col.type) or pa.types.is_large_list(col.type):
        col = col.flatten()
    out = np.asarray(col.to_numpy(zero_copy_only=False)).reshape(len(table), *shape)
    if dtype not in ("float64", "float32", "float16") and out.dtype.kind != "f":
        return out
    # The wider of the declared and the stored float: float64 either way stays float64 (a cast would round a large offset)
    return out.astype(np.float64 if dtype == "float64" or out.dtype == np.float64 else np.float32)


def _period(info: Mapping[str, Any], given: float | None, path: Path) -> float:
    """Seconds per step: 1 / ``fps``, or ``given`` (``control_period_s``) where fps is no plausible rate
    (fiper.control.period.recorded_period)."""
    from fiper.control.period import recorded_period  # here: fiper.control imports this module

    try:
        return recorded_period(given, info.get("fps"), f"fps in {path}", rate_required=True)
    except ValueError as err:
        raise LeRobotImportError(str(err)) from None


def _episodes(root: Path, info: dict[str, Any]) -> list[dict[str, Any]]:
    """One dict per episode, in episode order: its index, length and (v3) where its videos lie."""
    if info["codebase_version"] == "v3.0":
        pa = _pyarrow()
        pq = pa.parquet

        files = sorted((root / "meta" / "episodes").rglob("*.parquet"))
        if not files:
            raise LeRobotImportError(f"{root}/meta/episodes holds no parquet file; the dataset's episode index is missing")
        tables = [pq.read_table(f, columns=[c for c in pq.read_schema(f).names  # the index, not the per-episode stats
                                            if c in ("episode_index", "length") or c.startswith("videos/")]) for f in files]
        rows = pa.concat_tables(tables, promote_options="default").to_pylist()
    else:
        path = root / "meta" / "episodes.jsonl"
        if not path.is_file():
            raise LeRobotImportError(f"{path} is missing; a {info['codebase_version']} dataset lists its episodes there")
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return sorted(rows, key=lambda r: int(r["episode_index"]))


def _video_frames(path: Path) -> Iterator[np.ndarray]:
    import imageio.v2 as imageio

    if not path.is_file():
        raise LeRobotImportError(f"{path} is missing; the dataset's camera videos were not downloaded with it")
    with imageio.get_reader(str(path), "ffmpeg") as reader:
        yield from reader


def _videos(root: Path, info: dict[str, Any], episodes: list[dict[str, Any]], feature: str, fps: float) -> Iterator[np.ndarray]:
    """The frames (length, H, W, C) of each episode of one camera, in episode order, each video file read once."""
    template = str(info["video_path"])
    if info["codebase_version"] != "v3.0":  # one file per episode
        chunks = int(info.get("chunks_size", 1000))
        for ep in episodes:
            i = int(ep["episode_index"])
            path = root / template.format(episode_chunk=i // chunks, video_key=feature, episode_index=i)
            yield _take(_video_frames(path), int(ep["length"]), path, i)
        return
    opened: tuple[Any, Iterator[np.ndarray], int] | None = None  # (file, its frames, the next frame's index)
    for ep in episodes:
        i, length = int(ep["episode_index"]), int(ep["length"])
        where = (int(ep[f"videos/{feature}/chunk_index"]), int(ep[f"videos/{feature}/file_index"]))
        first = int(round(float(ep[f"videos/{feature}/from_timestamp"]) * fps))
        path = root / template.format(video_key=feature, chunk_index=where[0], file_index=where[1])
        if opened is None or opened[0] != path or opened[2] > first:
            opened = (path, _video_frames(path), 0)
        _, frames, at = opened
        for _ in range(first - at):  # frames of episodes not imported
            next(frames, None)
        yield _take(frames, length, path, i)
        opened = (path, frames, first + length)


def _take(frames: Iterator[np.ndarray], n: int, path: Path, episode: int) -> np.ndarray:
    got = [np.asarray(f) for _, f in zip(range(n), frames)]
    if len(got) < n:
        raise LeRobotImportError(f"{path} ends after {len(got)} of episode {episode}'s {n} frames; the video is truncated "
                                 "(download it again)")
    return np.stack(got).astype(np.uint8)


def import_lerobot(dataset: str | os.PathLike, out: str | os.PathLike, *, keys: Mapping[str, str] | None = None,
                   task: str | None = None, max_episodes: int | None = None, control_period_s: float | None = None,
                   overwrite: bool = False) -> EpisodeStore:
    """Write the LeRobotDataset at ``dataset`` as a fiper demonstration store at ``out``; see the module docstring."""
    root, keys = Path(dataset).expanduser(), dict(keys or {})
    info = _read_info(root)
    check_out(out, overwrite)
    period = _period(info, control_period_s, root / "meta" / "info.json")
    features = {k: v for k, v in info["features"].items()  # text features (a language instruction) are no observation
                if k not in BOOKKEEPING and k not in LABELS and v.get("dtype") != "string"}
    names = {"action": "action", **store_names([f for f in features if f != "action"], keys, store_key_default,
                                                LeRobotImportError, taken=["action"])}
    cameras = [f for f, spec in features.items() if spec.get("dtype") == "video"]
    columns = [f for f in features if f not in cameras]
    success = "next.success" in info["features"]
    table = _table(root, [*columns, *(["next.success"] if success else []), "episode_index", "frame_index"])
    order = np.lexsort((table.column("frame_index").to_numpy(), table.column("episode_index").to_numpy()))
    table = table.take(order)
    arrays = {f: _decode_images(table, f, features[f]) if features[f].get("dtype") == "image"
              else _column(table, f, tuple(features[f]["shape"]), str(features[f]["dtype"])) for f in columns}
    ep_index = table.column("episode_index").to_numpy()
    succeeded = table.column("next.success").to_numpy(zero_copy_only=False) if success else None
    episodes = _episodes(root, info)[: max_episodes]
    starts = np.searchsorted(ep_index, [int(e["episode_index"]) for e in episodes])
    frames = {c: _videos(root, info, episodes, c, 1.0 / period) for c in cameras}
    attrs = {"task": task or root.name, "control_period_s": period, "source": f"lerobot {info['codebase_version']}",
             "lerobot": {"dataset": str(root), "fps": info.get("fps"), "robot_type": info.get("robot_type"), "keys": names}}

    def fill(store: EpisodeStore) -> None:
        for ep, start in zip(episodes, starts):
            i, length = int(ep["episode_index"]), int(ep["length"])
            rows = slice(int(start), int(start) + length)
            if int(np.sum(ep_index[rows] == i)) != length:
                raise LeRobotImportError(f"episode {i} lists {length} frames in the dataset's episode index but data/ holds "
                                         f"{int(np.sum(ep_index == i))}; the dataset is incomplete (download it again)")
            data = {names[f]: arrays[f][rows] for f in columns}
            data.update({names[c]: next(frames[c]) for c in cameras})
            meta = {"success": bool(succeeded[rows].any())} if success else {}
            store.append_episode(data, meta=meta)

    return build_store(out, fill, attrs=attrs, overwrite=overwrite)


def _decode_images(table: Any, feature: str, spec: Mapping[str, Any]) -> np.ndarray:
    """An 'image' feature (PNG bytes in the parquet) as uint8 (N, H, W, C)."""
    import imageio.v3 as iio

    cells = table.column(feature).to_pylist()
    return np.stack([np.atleast_3d(iio.imread(c["bytes"])) for c in cells]).astype(np.uint8).reshape(len(cells), *spec["shape"])
