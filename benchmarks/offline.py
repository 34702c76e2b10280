"""Offline evaluation throughput: re-scoring, the window x threshold x delta grid, and a loop baseline.

    .venv/bin/python -m benchmarks.offline [--episodes 1000] [--threads 1] [--rebuild]

Builds (once, reused under /tmp) a synthetic rollout store of realistic shapes (30-60 decisions
per episode, D=64, B=32, H=16, A=2, float16 samples), runs the whole offline evaluation with the
default configuration, and prints decisions scored per second for every score, the throughput of
the grid (calibration + validation selection + test), and the aggregation+threshold part against
a per-step Python loop over the same validation data.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch

from fiper.evaluation import EvaluationConfig, evaluate_task, load_rollouts
from fiper.evaluation.grid import candidate_alarms
from benchmarks.synthetic_stores import SyntheticTask, write_synthetic_store
from fiper.monitor.padding import to_padded
from fiper.storage import EpisodeStore

TASK = SyntheticTask(name="bench", embedding_dim=64, num_samples=32, horizon=16, action_dim=2, n_action_steps=8,
                     min_decisions=30, max_decisions=60, drift=0.25, task_seed=1, control_period_s=0.05)


def build_store(path: Path, episodes: int, rebuild: bool) -> Path:
    """The benchmark store at ``path``, rebuilt only if missing, of another size, or asked for."""
    sizes = dict(n_success_id=episodes // 2, n_success_ood=episodes * 3 // 20, n_fail_id=episodes // 5)
    sizes["n_fail_ood"] = episodes - sum(sizes.values())
    key = f"{TASK}|{sizes}"
    if path.exists() and not rebuild:
        try:
            if EpisodeStore.open(path).attrs.get("bench_key") == key:
                return path
        except Exception as err:  # a broken leftover: rebuild it
            print(f"rebuilding {path}: {err}")
    start = time.perf_counter()
    store = write_synthetic_store(path, TASK, seed=0, overwrite=True, **sizes)
    store = EpisodeStore.open(path, mode="a")
    store.set_attrs(bench_key=key)
    print(f"built {path} ({episodes} episodes) in {time.perf_counter() - start:.1f} s")
    return path


def loop_alarms(etas, gammas, rule: str, episodes, lengths):
    """Per-step Python reference: trailing sums and comparisons, one decision at a time.

    ``etas[k]`` is score k's raw padded (E, T) scores, ``gammas[k]`` its list of (window, curve)
    pairs, one per grid cell; returns first alarms per cell and rollout.
    """
    out = []
    for cell in range(len(gammas[0])):
        firsts = []
        for e in episodes:
            n = int(lengths[e])
            sums = [0.0] * len(etas)
            first = -1
            for t in range(n):
                crossed = []
                for k in range(len(etas)):
                    w, curve = gammas[k][cell]
                    sums[k] += etas[k][e][t] - (etas[k][e][t - w] if t >= w else 0.0)
                    crossed.append(sums[k] > curve[min(t, len(curve) - 1)])
                if (any(crossed) if rule == "or" else all(crossed)) and first < 0:
                    first = t
                    break
            firsts.append(first)
        out.append(firsts)
    return np.array(out)


def compare_with_loop(task, method: str, kind: str) -> tuple[float, float, int, int]:
    """(vectorised s, loop s, decision-cells, cells whose first alarms differ) for one method x type on validation.

    The loop stops at the first alarm and computes no ratios, so the ratio shown is conservative.
    """
    spec = task.methods[method].spec
    grids = [task.grids[s] for s in spec.scores]
    indices = [list(range(len(g.labels))) for g in grids]
    val, lengths = task.split.validation, task.rollouts.lengths
    start = time.perf_counter()
    vec = candidate_alarms(grids, indices, kind, spec.rule, val, lengths)
    t_vec = time.perf_counter() - start
    raw = [to_padded(task.scored.raw[s], task.rollouts.decision_ends)[0].tolist() for s in spec.scores]
    n_deltas = len(task.deltas)
    cells = [(c, d) for c in vec.candidates for d in range(n_deltas)]
    gammas = [[(int(g.windows[c[k]]), g.gamma[kind][c[k], d].tolist()) for c, d in cells] for k, g in enumerate(grids)]
    start = time.perf_counter()
    ref = loop_alarms(raw, gammas, spec.rule, val, lengths)
    t_loop = time.perf_counter() - start
    differ = int((ref != vec.first_alarm.reshape(len(cells), -1)).any(axis=1).sum())  # float summation order only
    return t_vec, t_loop, len(cells) * int(lengths[val].sum()), differ


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--path", type=Path, default=None, help="store path (default /tmp/fiper_bench_offline/rollouts_<n>.zarr)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for the small score networks)")
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    path = args.path or Path(f"/tmp/fiper_bench_offline/rollouts_{args.episodes}.zarr")
    build_store(path, args.episodes, args.rebuild)

    start = time.perf_counter()
    rollouts = load_rollouts(str(path))["bench"]
    t_load = time.perf_counter() - start
    n = int(rollouts.decision_ends[-1])
    print(f"store: {rollouts.n_episodes} episodes, {n} decisions, D={rollouts.embeddings.shape[1]}, "
          f"(B, H, A)={rollouts.sample_shape} {rollouts.samples.dtype}; loaded in {t_load:.2f} s; torch threads {args.threads}")
    config = EvaluationConfig(progress=False)
    start = time.perf_counter()
    task = evaluate_task(rollouts, config)
    total = time.perf_counter() - start
    secs = task.seconds

    print(f"\n{'score':<12} {'fit s':>7} {'score s':>8} {'decisions/s':>12}")
    for name in task.scored.raw:
        fit, score = secs[f"fit/{name}"], secs[f"score/{name}"]
        print(f"{name:<12} {fit:>7.2f} {score:>8.3f} {n / score:>12,.0f}")

    grid_s = secs["calibrate"] + secs["select_and_test"]
    kinds, deltas = len(config.threshold_types), len(config.deltas)
    candidates = sum(len(next(iter(m.types.values())).candidates) for m in task.methods.values() if not m.spec.select)
    n_val = int(rollouts.lengths[task.split.validation].sum())
    print(f"\ngrid: {len(config.methods)} methods ({candidates} window candidates in all) x {kinds} threshold types x "
          f"{deltas} deltas = {candidates * kinds * deltas} cells")
    print(f"  calibration (windows + {sum(len(g.labels) for g in task.grids.values()) * kinds * deltas} threshold fits): {secs['calibrate']:.2f} s")
    print(f"  validation selection + test metrics: {secs['select_and_test']:.2f} s")
    print(f"  whole grid: {grid_s:.2f} s = {n / grid_s:,.0f} decisions/s of the task, "
          f"{candidates * kinds * deltas * n_val / secs['select_and_test']:,.0f} decision-cells/s on validation")
    print(f"  whole evaluation (fit + score + grid): {total:.1f} s")

    print(f"\naggregation + threshold, vectorised vs per-step Python loop (validation, {n_val} decisions):")
    print(f"{'method / threshold':<22} {'cells':>6} {'vector s':>9} {'loop s':>8} {'ratio':>7}")
    for method, kind in (("ace", "band"), ("fiper", "band")):
        t_vec, t_loop, cells, differ = compare_with_loop(task, method, kind)
        print(f"{method + ' / ' + kind:<22} {cells // n_val:>6} {t_vec:>9.3f} {t_loop:>8.2f} {t_loop / t_vec:>6.0f}x"
              f"   ({cells / t_vec:,.0f} vs {cells / t_loop:,.0f} decision-cells/s; cells with differing alarms: {differ})")
    fiper = task.methods["fiper"].types
    print("\nFIPER test (mean over delta): " + ", ".join(
        f"{k}: TWA {np.mean(r.test['twa']):.2f}, Acc {np.mean(r.test['accuracy']):.2f}" for k, r in fiper.items()))
    if not all(math.isfinite(np.mean(r.test["auroc"])) for r in fiper.values()):
        raise AssertionError("FIPER AUROC undefined on the benchmark store")


if __name__ == "__main__":
    main()
