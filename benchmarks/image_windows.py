"""Training batches from image stores: TrainingWindows read from the chunks on disk against held in memory.

    python -m benchmarks.image_windows [--root DIR] [--sides 96 224] [--batch 64 256] [--train-batch 64] [--threads 1]

Builds (once, reused under --root) synthetic demonstration stores of two 3-channel uint8 cameras,
a 2-D position and a 2-D action, in two layouts per image side: ``fiper`` (EpisodeStore's writer:
time chunks of about 1 MiB, Blosc-LZ4, so 37 frames of 96 x 96 or 6 of 224 x 224 per chunk) and
``dp`` (diffusion_policy's robomimic and real-robot conversions: one frame per chunk, imagecodecs
Jpeg2k level 50). For each store and batch size it prints batches/s, MB read from files (rchar)
and chunks decoded per batch in four ways (MODES): every column on disk read row by row as before
the chunk cache, images on disk through the cache with windows drawn uniformly or in the chunked
epoch order, and everything in memory; then seconds per training step of the default image policy
(diffusion, U-Net, launch/conf/policy/diffusion_unet_image.yaml) on the CPU with the batch read
before the step, or in a background thread (as policies.training does). Files stay in the page
cache between batches, so a cold disk only adds to the on-disk times.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import time
from pathlib import Path

import numpy as np

CAMERAS = ("agentview_image", "wrist_image")
LAYOUTS = ("fiper", "dp")
STEPS = 200  # per episode
EPISODES = {96: 100, 224: 20}  # 1.1 GB and 1.2 GB of frames per store, raw


def frames(rng: np.random.Generator, n: int, side: int) -> np.ndarray:
    """(n, side, side, 3) uint8 frames that compress like camera images: a smooth scene, a moving blob, sensor noise."""
    yy, xx = np.mgrid[:side, :side].astype(np.float32) / side
    freq, phase, colour = rng.uniform(1, 4, (2, 3)), rng.uniform(0, 6, (2, 3)), rng.uniform(60, 200, 3)
    scene = 90 + 60 * np.sin(freq[0] * 6 * xx[..., None] + phase[0]) * np.cos(freq[1] * 6 * yy[..., None] + phase[1])
    t = np.arange(n, dtype=np.float32)
    cx, cy = 0.5 + 0.3 * np.sin(t / 25 + phase[0, 0]), 0.5 + 0.3 * np.cos(t / 31 + phase[1, 0])
    out = np.empty((n, side, side, 3), np.uint8)
    for i in range(n):
        blob = np.exp(-((xx - cx[i]) ** 2 + (yy - cy[i]) ** 2) / 0.01)[..., None]
        noise = rng.normal(0, 3, (side, side, 3)).astype(np.float32)
        out[i] = np.clip(scene * (1 - blob) + colour * blob + noise, 0, 255)
    return out


def episode(rng: np.random.Generator, side: int) -> dict[str, np.ndarray]:
    pos = np.cumsum(rng.normal(0, 0.01, (STEPS, 2)), axis=0).astype(np.float32)
    data = {cam: frames(rng, STEPS, side) for cam in CAMERAS}
    return data | {"agent_pos": pos, "action": np.roll(pos, -1, axis=0)}


def build_fiper(path: Path, side: int, n_episodes: int) -> None:
    from fiper.storage import EpisodeStore

    store = EpisodeStore.create(path, overwrite=True)
    rng = np.random.default_rng(side)
    for _ in range(n_episodes):
        store.append_episode(episode(rng, side))


def build_dp(path: Path, side: int, n_episodes: int) -> None:
    """A ReplayBuffer as diffusion_policy's image conversions write it: one Jpeg2k frame per chunk."""
    import zarr
    from imagecodecs.numcodecs import Jpeg2k, register_codecs

    register_codecs(verbose=False)
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    data, meta = root.require_group("data"), root.require_group("meta")
    n = n_episodes * STEPS
    arrays = {cam: data.create_array(cam, shape=(n, side, side, 3), chunks=(1, side, side, 3), dtype="uint8",
                                     compressor=Jpeg2k(level=50)) for cam in CAMERAS}
    arrays |= {k: data.create_array(k, shape=(n, 2), chunks=(n, 2), dtype="float32") for k in ("agent_pos", "action")}
    rng = np.random.default_rng(side)
    for e in range(n_episodes):
        for key, values in episode(rng, side).items():
            arrays[key][e * STEPS:(e + 1) * STEPS] = values
    meta.create_array("episode_ends", shape=(n_episodes,), dtype="int64")[:] = np.arange(1, n_episodes + 1) * STEPS


def ensure_store(root: Path, layout: str, side: int) -> Path:
    """The store of ``layout`` at ``side`` px under ``root``, built when missing (a partial one is rebuilt)."""
    path = root / f"{layout}_{side}.zarr"
    done = root / f"{layout}_{side}.done"
    if not done.exists():
        shutil.rmtree(path, ignore_errors=True)
        t0 = time.perf_counter()
        (build_fiper if layout == "fiper" else build_dp)(path, side, EPISODES[side])
        done.write_text("")
        print(f"built {path} in {time.perf_counter() - t0:.0f} s", flush=True)
    return path


def disk_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def rchar() -> int:
    """Bytes this process has read through read() calls, page cache included."""
    with open("/proc/self/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("rchar"))


def time_batches(windows, batch: int, chunked: bool, min_time: float, min_batches: int) -> dict[str, float]:
    """Seconds, MB read (rchar) and chunks decoded per batch: uniform windows, or consecutive ones of the epoch order."""
    rng = np.random.default_rng(0)
    order = windows.epoch_order(rng) if chunked else None
    draw = (lambda i: order[(i * batch) % len(order):][:batch]) if chunked else (lambda i: rng.integers(0, len(windows), batch))
    windows.batch(draw(0))  # warm-up: metadata, codecs
    n, reads0, read0, t0 = 0, windows.chunk_reads, rchar(), time.perf_counter()
    while n < min_batches or time.perf_counter() - t0 < min_time:
        windows.batch(draw(n + 1))
        n += 1
    seconds = (time.perf_counter() - t0) / n
    return {"s": seconds, "mb": (rchar() - read0) / 1e6 / n, "chunks": (windows.chunk_reads - reads0) / n}


def image_policy(shapes: dict[str, tuple[int, ...]]):
    """The default image policy (diffusion, U-Net, image encoder) and an AdamW optimiser on it."""
    import torch

    from policies import PolicyConfig, build_policy

    torch.manual_seed(0)
    policy = build_policy(PolicyConfig(encoder="image", obs_keys=tuple(shapes)), shapes, 2).train()
    return policy, torch.optim.AdamW(policy.model.parameters(), lr=1e-4)


def train_seconds(policy, optimizer, windows, batch: int, steps: int, chunked: bool, prefetch: bool) -> float:
    """Seconds per training step (forward/backward + AdamW) on batches of ``windows``, read before each step or in a
    background thread while the previous step runs, as policies.training does."""
    from concurrent.futures import ThreadPoolExecutor

    import torch

    rng = np.random.default_rng(1)
    order = windows.epoch_order(rng) if chunked else None
    draws = [order[i * batch:(i + 1) * batch] if chunked else rng.integers(0, len(windows), batch) for i in range(steps + 1)]

    def step(obs, action):
        loss = policy.compute_loss({k: torch.from_numpy(v) for k, v in obs.items()}, torch.from_numpy(action))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step(*windows.batch(draws[0]))  # warm-up
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=1) as reader:
        ahead = reader.submit(windows.batch, draws[1])
        for i in range(1, steps + 1):
            data = ahead.result() if prefetch else windows.batch(draws[i])
            if prefetch and i < steps:
                ahead = reader.submit(windows.batch, draws[i + 1])
            step(*data)
    return (time.perf_counter() - t0) / steps


MODES = {  # name: (TrainingWindows arguments, chunked order)
    "before": ({"in_memory": False, "cache_bytes": 0}, False),  # every column on disk, every batch reads rows
    "uniform": ({"memory_limit": 64 << 20}, False),  # images on disk through the chunk cache, windows drawn uniformly
    "chunked": ({"memory_limit": 64 << 20}, True),  # the same, in TrainingWindows.epoch_order
    "memory": ({"in_memory": True}, False),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("/tmp/fiper_bench_image_windows"))
    parser.add_argument("--sides", type=int, nargs="+", default=[96, 224], choices=sorted(EPISODES))
    parser.add_argument("--layouts", nargs="+", default=list(LAYOUTS), choices=LAYOUTS)
    parser.add_argument("--batch", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the training step")
    parser.add_argument("--min-time", type=float, default=3.0, help="seconds of batches per case")
    parser.add_argument("--train-steps", type=int, default=3, help="training steps per case (0: none)")
    parser.add_argument("--train-batch", type=int, nargs="+", default=[64], help="batch sizes of the training steps")
    args = parser.parse_args()
    import torch

    from fiper.storage import EpisodeStore, TrainingWindows

    torch.set_num_threads(args.threads)
    args.root.mkdir(parents=True, exist_ok=True)
    print(f"{platform.processor() or platform.machine()} CPU, torch {torch.__version__}, {args.threads} torch thread(s)")
    print("| store | B | " + " | ".join(f"{m}: batch/s, MB read, chunks" for m in MODES) + " | before / chunked time |")
    print("|---|---|" + "---|" * (len(MODES) + 1))
    keys = [*CAMERAS, "agent_pos"]
    steps = []
    for side in args.sides:
        policy, optimizer = image_policy({c: (side, side, 3) for c in CAMERAS} | {"agent_pos": (2,)})
        for layout in args.layouts:
            path = ensure_store(args.root, layout, side)
            store = EpisodeStore.open(path)
            name = f"{layout} {side}px, {store.n_steps} x {len(CAMERAS)} frames, {disk_mb(path):.0f} MB"
            for batch in args.batch:
                cells, seconds = [], {}
                for mode, (kwargs, chunked) in MODES.items():
                    windows = TrainingWindows(store, keys, 2, 16, **kwargs)
                    r = time_batches(windows, batch, chunked, args.min_time, 16 if chunked or mode == "memory" else 3)
                    seconds[mode] = r["s"]
                    cells.append(f"{1 / r['s']:.1f}, {r['mb']:.1f}, {r['chunks']:.0f}")
                    if args.train_steps and batch in args.train_batch and mode in ("before", "chunked", "memory"):
                        prefetch = mode == "chunked"
                        steps.append((name, batch, mode + (" + prefetch" if prefetch else ""), r["s"],
                                      train_seconds(policy, optimizer, windows, batch, args.train_steps,
                                                    chunked, prefetch)))
                    del windows
                print(f"| {name} | {batch} | " + " | ".join(cells) + f" | {seconds['before'] / seconds['chunked']:.1f}x |",
                      flush=True)
    if steps:
        print("\n| store | B | batches | batch() alone | training step with its batch |\n|---|---|---|---|---|")
        for name, batch, mode, load, step in steps:
            print(f"| {name} | {batch} | {mode} | {load:.3f} s | {step:.2f} s |")


if __name__ == "__main__":
    main()
