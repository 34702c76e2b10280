"""Small LeRobotDatasets written as lerobot writes them (codebase v3.0: episodes concatenated into chunked parquet
and AV1 mp4 files, indexed by meta/episodes; v2.1: one parquet and one mp4 per episode, meta/episodes.jsonl), for the
import tests. Frame k of every episode is a flat image of brightness ``shade(k)``, so misaligned frames show."""

from __future__ import annotations

import functools
import json
import os
import subprocess
from pathlib import Path

import numpy as np

FPS, SIDE = 10, 32
LENGTHS = (7, 5, 9)


def shade(k: int) -> int:
    return 20 + 25 * (k % 9)


def episode_frames(length: int) -> np.ndarray:
    return np.stack([np.full((SIDE, SIDE, 3), shade(k), np.uint8) for k in range(length)])


def _features() -> dict:
    return {
        "observation.state": {"dtype": "float32", "shape": [2], "names": ["x", "y"]},
        "observation.environment_state": {"dtype": "float32", "shape": [4], "names": None},
        "observation.image": {"dtype": "video", "shape": [SIDE, SIDE, 3], "names": ["height", "width", "channels"]},
        "action": {"dtype": "float32", "shape": [2], "names": ["x", "y"]},
        "next.reward": {"dtype": "float32", "shape": [1], "names": None},
        "next.success": {"dtype": "bool", "shape": [1], "names": None},
        "timestamp": {"dtype": "float32", "shape": [1], "names": None},
        "frame_index": {"dtype": "int64", "shape": [1], "names": None},
        "episode_index": {"dtype": "int64", "shape": [1], "names": None},
        "index": {"dtype": "int64", "shape": [1], "names": None},
        "task_index": {"dtype": "int64", "shape": [1], "names": None},
    }


def _frames_table(episodes: list[int], first_index: int):
    """The data columns of ``episodes`` (their lengths from LENGTHS); state x = episode, y = frame."""
    import pyarrow as pa

    rows = [(e, k) for e in episodes for k in range(LENGTHS[e])]
    n = len(rows)
    state = np.array([[e, k] for e, k in rows], np.float32)
    return pa.table({
        "observation.state": pa.array(list(state), type=pa.list_(pa.float32())),
        "observation.environment_state": pa.array(list(np.tile(state, 2)), type=pa.list_(pa.float32())),
        "action": pa.array(list(state + 0.5), type=pa.list_(pa.float32())),
        "next.reward": pa.array(np.zeros(n, np.float32)),
        "next.success": pa.array([e != 1 and k == LENGTHS[e] - 1 for e, k in rows]),  # episode 1 fails
        "timestamp": pa.array(np.array([k / FPS for _, k in rows], np.float32)),
        "frame_index": pa.array(np.array([k for _, k in rows], np.int64)),
        "episode_index": pa.array(np.array([e for e, _ in rows], np.int64)),
        "index": pa.array(np.arange(first_index, first_index + n, dtype=np.int64)),
        "task_index": pa.array(np.zeros(n, np.int64)),
    })


@functools.cache
def _av1_encoder() -> str:
    """lerobot's AV1 encoder, SVT-AV1, where the bundled ffmpeg has it (imageio-ffmpeg >= 0.8); libaom's before
    (experimental in ffmpeg 4, hence '-strict experimental')."""
    import imageio_ffmpeg

    listed = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-encoders"], capture_output=True, text=True)
    return "libsvtav1" if " libsvtav1 " in listed.stdout else "libaom-av1"


def _write_video(path: Path, frames: np.ndarray) -> None:
    import imageio.v2 as imageio

    os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1's own log: errors only
    path.parent.mkdir(parents=True, exist_ok=True)
    imageio.mimwrite(str(path), list(frames), fps=FPS, codec=_av1_encoder(), pixelformat="yuv420p", macro_block_size=1,
                     output_params=["-strict", "experimental"])


def write_v30(root: Path) -> Path:
    """Episodes 0, 1 in data file 0 and video file 0; episode 2 in file 1 of each (as a size limit splits them)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (root / "meta" / "episodes" / "chunk-000").mkdir(parents=True)
    info = {"codebase_version": "v3.0", "robot_type": "pusht", "fps": FPS, "total_episodes": 3, "total_frames": sum(LENGTHS),
            "chunks_size": 1000, "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
            "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4", "features": _features()}
    (root / "meta" / "info.json").write_text(json.dumps(info))
    meta, index = [], 0
    for file_index, eps in enumerate(([0, 1], [2])):
        (root / "data" / "chunk-000").mkdir(parents=True, exist_ok=True)
        pq.write_table(_frames_table(eps, index), root / "data" / "chunk-000" / f"file-{file_index:03d}.parquet")
        _write_video(root / "videos" / "observation.image" / "chunk-000" / f"file-{file_index:03d}.mp4",
                     np.concatenate([episode_frames(LENGTHS[e]) for e in eps]))
        t = 0.0
        for e in eps:
            meta.append({"episode_index": e, "tasks": ["Push the T"], "length": LENGTHS[e], "data/chunk_index": 0,
                         "data/file_index": file_index, "dataset_from_index": index, "dataset_to_index": index + LENGTHS[e],
                         "videos/observation.image/chunk_index": 0, "videos/observation.image/file_index": file_index,
                         "videos/observation.image/from_timestamp": t, "videos/observation.image/to_timestamp": t + LENGTHS[e] / FPS,
                         "stats/action/mean": [0.5, 0.5], "stats/observation.image/mean": [[[0.5]], [[0.5]], [[0.5]]]})
            t += LENGTHS[e] / FPS
            index += LENGTHS[e]
    pq.write_table(pa.Table.from_pylist(meta), root / "meta" / "episodes" / "chunk-000" / "file-000.parquet")
    return root


def write_v21(root: Path) -> Path:
    """One parquet and one mp4 per episode, meta/episodes.jsonl."""
    import pyarrow.parquet as pq

    (root / "meta").mkdir(parents=True)
    info = {"codebase_version": "v2.1", "robot_type": "pusht", "fps": FPS, "total_episodes": 3, "chunks_size": 1000,
            "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
            "video_path": "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4", "features": _features()}
    (root / "meta" / "info.json").write_text(json.dumps(info))
    lines, index = [], 0
    for e, length in enumerate(LENGTHS):
        (root / "data" / "chunk-000").mkdir(parents=True, exist_ok=True)
        pq.write_table(_frames_table([e], index), root / "data" / "chunk-000" / f"episode_{e:06d}.parquet")
        _write_video(root / "videos" / "chunk-000" / "observation.image" / f"episode_{e:06d}.mp4", episode_frames(length))
        lines.append(json.dumps({"episode_index": e, "tasks": ["Push the T"], "length": length}))
        index += length
    (root / "meta" / "episodes.jsonl").write_text("\n".join(lines) + "\n")
    return root


WRIST = (16, 24)  # a second camera of another size: (height, width)


def wrist_frames(length: int) -> np.ndarray:
    return np.stack([np.full((*WRIST, 3), 255 - shade(k), np.uint8) for k in range(length)])


def add_wrist_camera(root: Path) -> Path:
    """A second video feature, observation.images.wrist, to a dataset write_v30 or write_v21 wrote: in v3.0 every
    episode in one file (the front camera's episode 2 is in a file of its own), so the two cameras' files and
    timestamps differ."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    key = "observation.images.wrist"
    info = json.loads((root / "meta" / "info.json").read_text())
    info["features"][key] = {"dtype": "video", "shape": [*WRIST, 3], "names": ["height", "width", "channels"]}
    (root / "meta" / "info.json").write_text(json.dumps(info))
    if info["codebase_version"] == "v2.1":
        for e, length in enumerate(LENGTHS):
            _write_video(root / "videos" / "chunk-000" / key / f"episode_{e:06d}.mp4", wrist_frames(length))
        return root
    _write_video(root / "videos" / key / "chunk-000" / "file-000.mp4", np.concatenate([wrist_frames(n) for n in LENGTHS]))
    episodes = root / "meta" / "episodes" / "chunk-000" / "file-000.parquet"
    rows, t = pq.read_table(episodes).to_pylist(), 0.0
    for row in rows:
        length = LENGTHS[row["episode_index"]]
        row.update({f"videos/{key}/chunk_index": 0, f"videos/{key}/file_index": 0, f"videos/{key}/from_timestamp": t,
                    f"videos/{key}/to_timestamp": t + length / FPS})
        t += length / FPS
    pq.write_table(pa.Table.from_pylist(rows), episodes)
    return root
