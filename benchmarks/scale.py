"""Time and peak memory of the whole offline evaluation as the number of recorded decisions grows.

    .venv/bin/python -m benchmarks.scale [--sizes 10000,30000,100000] [--batch 256] [--config full|tiny]

Builds (once, reused under --root) synthetic rollout stores of ``min(sizes)`` decisions each (B
sampled chunks per decision, D=64, H=16, A=2, float16 samples, 30-60 decisions per episode) and
evaluates, for every size, the first size / min(sizes) of them as one task (a multirun sweep;
``--one-store``: one store per size),
each size in a fresh child process whose peak resident memory (VmHWM) is reported
with the evaluation's wall and CPU time (CPU time moves less with the load of shared cores).
Prints the ratios of the largest size to the smallest.

``--config full`` is the default evaluation (every score and method, 6 windows, 3 threshold
types) at deltas 0.05 and 0.10 (what the smallest size can calibrate); ``tiny`` is a quick one
with two scores that fit on sample batches (ACE, and RND-A at small widths), for tests.
``--block-mb`` sets how many MiB of sample batches are read at once and held in memory at most.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

TASK_NAME = "scale"
RESULT_TAG = "SCALE_RESULT "
TINY_SCORES = {
    "ace": {"score": "ace", "dims": [0, 1]},
    "rnd_a": {"score": "rnd_a", "target_widths": [16], "predictor_widths": [16, 16], "out_dim": 8, "train": {"max_epochs": 2}},
}
TINY_METHODS = {"ace": {"scores": ["ace"]}, "rnd_a": {"scores": ["rnd_a"]}}


def task(batch: int, action_dim: int = 2):
    from benchmarks.synthetic_stores import SyntheticTask

    return SyntheticTask(name=TASK_NAME, embedding_dim=64, num_samples=batch, horizon=16, action_dim=action_dim, n_action_steps=8,
                         min_decisions=30, max_decisions=60, drift=0.25, task_seed=1, control_period_s=0.05)


def build_parts(root: Path, n_parts: int, part_decisions: int, batch: int, action_dim: int = 2) -> list[Path]:
    """Stores part_0 .. part_<n-1> of about ``part_decisions`` decisions each, built only when missing."""
    from benchmarks.synthetic_stores import write_synthetic_store
    from fiper.storage import EpisodeStore

    episodes = max(8, round(part_decisions / 45))  # 45 decisions per episode on average
    sizes = dict(n_success_id=episodes * 3 // 5, n_success_ood=episodes * 3 // 20, n_fail_id=episodes * 3 // 20)
    sizes["n_fail_ood"] = episodes - sum(sizes.values())
    paths = []
    for i in range(n_parts):
        path = root / f"b{batch}_a{action_dim}_d{part_decisions}" / f"part_{i:03d}.zarr"
        key = f"{task(batch, action_dim)}|{sizes}|{i}"
        try:
            if EpisodeStore.open(path).attrs.get("scale_key") == key:
                paths.append(path)
                continue
        except Exception:  # missing or a broken leftover: (re)build it
            pass
        start = time.perf_counter()
        write_synthetic_store(path, task(batch, action_dim), seed=i, overwrite=True, **sizes)
        EpisodeStore.open(path, mode="a").set_attrs(scale_key=key)
        print(f"built {path} in {time.perf_counter() - start:.1f} s", flush=True)
        paths.append(path)
    return paths


def peak_rss_mb() -> float:
    """This process's peak resident memory in MiB: VmHWM (reset at exec, unlike ru_maxrss, which a
    child inherits from the parent that spawned it), else ru_maxrss where /proc is missing."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(stores: list[str], config_name: str, block_mb: float | None) -> None:
    """Evaluate the stores as one task in this process and print its time and peak memory as one JSON line."""
    import torch

    from fiper.evaluation import EvaluationConfig, evaluate_task, load_rollouts
    from fiper.evaluation import rowview
    from fiper.scores import inputs

    torch.set_num_threads(1)
    if block_mb is not None:
        inputs.READ_BLOCK_BYTES = rowview.IN_MEMORY_BYTES = int(block_mb * (1 << 20))
    values = {"deltas": [0.05, 0.1], "progress": False}
    if config_name == "tiny":
        values.update(scores=TINY_SCORES, methods=TINY_METHODS, deltas=[0.2], windows=[1, 3], threshold_types=["constant"],
                      plot_method=None, references=[])
    config = EvaluationConfig.from_mapping(values)
    imports_mb = peak_rss_mb()
    start, cpu_start = time.perf_counter(), time.process_time()
    rollouts = load_rollouts(stores)[TASK_NAME]
    result = evaluate_task(rollouts, config)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    peak_mb = peak_rss_mb()
    line = json.dumps({
        "decisions": int(rollouts.decision_ends[-1]), "episodes": rollouts.n_episodes, "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "peak_mb": peak_mb, "imports_mb": imports_mb,
        "sample_mb": rollouts.samples.nbytes / (1 << 20),
        "stage_seconds": {k: round(v, 2) for k, v in result.seconds.items() if "/" not in k},
        "score_seconds": {k: round(v, 2) for k, v in result.seconds.items() if "/" in k},
    })
    with open(Path(stores[0]).parent / "results.jsonl", "a") as log:  # every run's figures, beside its stores
        log.write(line + "\n")
    print(RESULT_TAG + line, flush=True)


def measure(stores: list[Path], config_name: str, block_mb: float | None) -> dict:
    """Run ``child`` in a fresh interpreter (its own peak memory) and return its result."""
    cmd = [sys.executable, "-m", "benchmarks.scale", "--child", "--config", config_name, "--stores", ",".join(map(str, stores))]
    if block_mb is not None:
        cmd += ["--block-mb", str(block_mb)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=Path(__file__).resolve().parents[1])
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith(RESULT_TAG)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"the evaluation child failed (exit {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len(RESULT_TAG):])


def run(sizes: list[int], *, batch: int, root: Path, config_name: str, block_mb: float | None = None,
        one_store: bool = False, action_dim: int = 2) -> list[dict]:
    """Build the stores and measure every size (smallest first); returns one result per size.
    ``one_store``: each size is one store of its own instead of a prefix of shared parts."""
    sizes = sorted(sizes)
    if one_store:
        return [{"size": s, **measure(build_parts(root, 1, s, batch, action_dim), config_name, block_mb)} for s in sizes]
    part = sizes[0]
    counts = [max(1, round(s / part)) for s in sizes]
    paths = build_parts(root, counts[-1], part, batch, action_dim)
    return [{"size": s, **measure(paths[:c], config_name, block_mb)} for s, c in zip(sizes, counts)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,30000,100000", help="comma list of decision counts")
    parser.add_argument("--batch", type=int, default=256, help="B, sampled chunks per decision")
    parser.add_argument("--action-dim", type=int, default=2, help="A, action size (bytes per decision grow with it)")
    parser.add_argument("--config", choices=("full", "tiny"), default="full")
    parser.add_argument("--root", type=Path, default=Path("/tmp/fiper_bench_scale"))
    parser.add_argument("--block-mb", type=float, default=None, help="MiB of sample batches read at once (default 64)")
    parser.add_argument("--one-store", action="store_true", help="one store per size (default: shared parts of min(sizes))")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--stores", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.stores.split(","), args.config, args.block_mb)
        return
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    results = run(sizes, batch=args.batch, root=args.root, config_name=args.config, block_mb=args.block_mb, one_store=args.one_store,
                  action_dim=args.action_dim)
    print(f"\nB={args.batch}, A={args.action_dim}, config {args.config}, one torch thread per evaluation")
    print(f"{'decisions':>10} {'episodes':>9} {'samples MB':>11} {'time s':>8} {'CPU s':>8} {'peak RSS MB':>12} {'after imports MB':>17}")
    for r in results:
        print(f"{r['decisions']:>10,} {r['episodes']:>9,} {r['sample_mb']:>11,.0f} {r['seconds']:>8.1f} {r['cpu_seconds']:>8.1f} "
              f"{r['peak_mb']:>12,.0f} {r['imports_mb']:>17,.0f}")
        print(f"{'':>10} stages: {r['stage_seconds']}")
        print(f"{'':>10} per score: {r.get('score_seconds', {})}")
    first, last = results[0], results[-1]
    print(f"\n{last['decisions']:,} / {first['decisions']:,} decisions: time x{last['seconds'] / first['seconds']:.1f} "
          f"(CPU time x{last['cpu_seconds'] / first['cpu_seconds']:.1f}), "
          f"peak memory x{last['peak_mb'] / first['peak_mb']:.2f} ({last['peak_mb'] - first['peak_mb']:+,.0f} MB)")


if __name__ == "__main__":
    main()
