"""Measure the scripted experts: success rate, episode length, failure reasons and modes.

    python -m envs.measure_experts                        # 200 seeds per task, in distribution
    python -m envs.measure_experts --tasks sort --seeds 50 --shift obstacle:1.0
    python -m envs.measure_experts --sweep 1.0 --seeds 20  # expert success under each shift

Prints markdown tables (the ones recorded in docs/envs.md).
"""

from __future__ import annotations

import argparse
import collections
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from envs.registry import TASKS, make_env, make_expert
from envs.shifts import SHIFTS


def run_seeds(task: str, seeds: list[int], shifts: list[str]) -> list[dict]:
    """Run the task's expert once per seed; one record per episode."""
    env = make_env(task, shifts=shifts)
    expert = make_expert(env)
    out = []
    for seed in seeds:
        t0 = time.perf_counter()
        obs, info = env.reset(seed=seed)
        expert.reset(seed)
        done = False
        while not done:
            obs, _, terminated, truncated, info = env.step(expert.act(obs, info))
            done = terminated or truncated
        out.append({"success": info["success"], "reason": info["failure_reason"], "steps": info["step"],
                    "strategy": getattr(expert, "strategy", ""), "seconds": time.perf_counter() - t0})
    return out


def measure(task: str, n_seeds: int, start: int, workers: int, shifts: list[str]) -> list[dict]:
    seeds = list(range(start, start + n_seeds))
    chunks = [seeds[i::workers] for i in range(workers)]
    if workers == 1:
        return run_seeds(task, seeds, shifts)
    with ProcessPoolExecutor(workers) as pool:
        parts = pool.map(run_seeds, [task] * workers, chunks, [shifts] * workers)
    return [r for part in parts for r in part]


def table_row(task: str, records: list[dict]) -> str:
    steps = np.array([r["steps"] for r in records])
    success = np.mean([r["success"] for r in records])
    reasons = collections.Counter(r["reason"] for r in records if not r["success"])
    modes = collections.Counter(r["strategy"] for r in records)
    fmt = lambda c, k: ", ".join(f"{name} {n}" for name, n in c.most_common(k)) or "-"  # noqa: E731
    return (f"| {task} | {len(records)} | {100 * success:.1f} % | {steps.mean():.0f} | {np.percentile(steps, 95):.0f} | "
            f"{fmt(reasons, 4)} | {len(modes)}: {fmt(modes, 3)} | {np.mean([r['seconds'] for r in records]):.2f} |")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    p.add_argument("--seeds", type=int, default=200)
    p.add_argument("--start", type=int, default=0, help="first seed")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--shift", action="append", default=[], metavar="NAME:SEVERITY", help="repeatable")
    p.add_argument("--sweep", type=float, metavar="SEVERITY", help="success per physical shift family at this severity")
    args = p.parse_args(argv)
    if args.sweep is not None:
        sweep(args.tasks, args.sweep, args.seeds, args.start, args.workers)
        return
    print(f"seeds {args.start}..{args.start + args.seeds - 1}, shifts: {', '.join(args.shift) or 'none'}\n")
    print("| task | episodes | success | mean steps | p95 steps | failures | modes (distinct: top 3) | s/episode |")
    print("|---|---|---|---|---|---|---|---|")
    for task in args.tasks:
        print(table_row(task, measure(task, args.seeds, args.start, args.workers, args.shift)), flush=True)


def sweep(tasks: list[str], severity: float, n_seeds: int, start: int, workers: int) -> None:
    """Expert success rate under each low-dim-relevant shift family (image-only ones skipped)."""
    print(f"expert success at severity {severity}, seeds {start}..{start + n_seeds - 1}\n")
    print("| shift | expected | " + " | ".join(tasks) + " |")
    print("|---|---|" + "---|" * len(tasks))
    for name, cls in sorted(SHIFTS.items()):
        if cls.image_only:
            continue
        cells = []
        for task in tasks:
            records = measure(task, n_seeds, start, workers, [f"{name}:{severity}"])
            cells.append(f"{100 * np.mean([r['success'] for r in records]):.0f} %")
        print(f"| {name} | {cls.expected} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
