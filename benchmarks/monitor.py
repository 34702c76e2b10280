"""Monitor cost per decision (sampling excluded) and offline scoring throughput vs a per-step loop.

    python -m benchmarks.monitor [--threads 1] [--device cpu] [--rnd default wide]

Prints, for B in {32, 256}, H = 16, A in {2, 7}, D in {64, 512} and each RND-OE width choice
('default': the class / yaml default, widths sized from D; 'wide': the earlier explicit 256-512
networks, for comparison): the median
time of one FailureMonitor.step (RND-OE + ACE: networks, entropy, windows, thresholds), and the
offline throughput of the same monitor over a store (score_offline + alarms_offline) against the
monitor's own per-decision step loop over the same decisions, both best of 5, alternating, in one process.
ACE runs its compiled (numba) kernel when numba is importable (``FIPER_ACE_KERNEL=numpy`` forces the
numpy path; ``--ace-parallel`` spreads offline ACE over numba's threads); compilation (cached on
disk, seconds on a first run) happens while fitting, outside the timed region.
"""

from __future__ import annotations

import argparse
import itertools
import platform
import time

import numpy as np
import torch

from fiper.monitor import PolicyIdentity
from fiper.monitor.fitting import fit_monitor
from fiper.scores import ACE, histogram_kernel
from fiper.scores.base import ScoreFitData

H = 16


def synthetic(rng: np.random.Generator, n_episodes: int, length: int, d: int, b: int, a: int):
    n = n_episodes * length
    emb = rng.normal(size=(n, d)).astype(np.float32)
    samples = (rng.choice([-1.0, 1.0], size=(n, 1, 1, a)) + 0.1 * rng.normal(size=(n, b, H, a))).astype(np.float32)
    return emb, samples, np.arange(1, n_episodes + 1) * length


RND_WIDTHS = {"default": {}, "wide": {"target_widths": [256, 512, 256], "predictor_widths": [256, 512, 512, 512, 256], "out_dim": 128}}


def build(d: int, b: int, a: int, device: str, rnd: str = "default"):
    rng = np.random.default_rng(0)
    emb, smp, ends = synthetic(rng, 20, 30, d, b, a)
    rnd_oe = {"score": "rnd_oe", "train": {"max_epochs": 2}, **RND_WIDTHS[rnd]}
    scores = {"rnd_oe": rnd_oe, "ace": {"score": "ace", "dims": list(range(min(a, 3)))}}
    monitor = fit_monitor(ScoreFitData(emb, smp, ends, device=device), PolicyIdentity(d, b, H, a), scores=scores, windows={"rnd_oe": 5, "ace": 5})
    monitor.calibrate(monitor.score_offline(emb, smp, ends), ends, delta=0.1)
    return monitor


def online_ms(monitor, emb: torch.Tensor, smp: torch.Tensor, repeats: int = 200) -> float:
    monitor.reset()
    for i in range(10):
        monitor.step(emb[i], smp[i])
    times = []
    for i in range(repeats):
        t = time.perf_counter()
        monitor.step(emb[i % len(emb)], smp[i % len(smp)])
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1e3)


def offline_rate(monitor, emb, smp, ends, repeats: int = 5) -> tuple[float, float]:
    """Decisions/s (best of ``repeats``): vectorised score_offline + alarms, and the step loop over the same store."""
    vec = loop = 0.0
    n_loop = min(len(emb), 600)
    for _ in range(repeats):
        t = time.perf_counter()
        monitor.alarms_offline(monitor.score_offline(emb, smp, ends), ends)
        vec = max(vec, len(emb) / (time.perf_counter() - t))
        t = time.perf_counter()
        start = 0
        for end in ends:
            if start >= n_loop:
                break
            monitor.reset()
            for i in range(start, end):
                monitor.step(emb[i], smp[i])
            start = end
        loop = max(loop, start / (time.perf_counter() - t))
    return vec, loop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--episodes", type=int, default=100, help="offline store size (episodes of 40 decisions)")
    parser.add_argument("--ace-parallel", action="store_true", help="offline ACE over numba's threads (ACE.parallel_offline)")
    parser.add_argument("--rnd", nargs="+", choices=sorted(RND_WIDTHS), default=["default"], help="RND-OE widths to time")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    name = torch.cuda.get_device_name() if args.device == "cuda" else f"{platform.processor() or platform.machine()} CPU, {args.threads} thread(s)"
    if histogram_kernel.AVAILABLE:
        import numba

        ACE.parallel_offline = args.ace_parallel
        offline = f"prange over {numba.get_num_threads()} threads offline" if args.ace_parallel else "serial"
        ace = f"compiled (numba {numba.__version__}, {offline})"
    else:
        ace = "numpy"
    print(f"device: {name}; ACE: {ace}")
    print(f"{'rnd':>8}{'B':>5}{'A':>4}{'D':>6} | {'step ms':>8} | {'offline dec/s':>14}{'loop dec/s':>12}{'speed-up':>10}")
    for rnd, b, a, d in itertools.product(args.rnd, (32, 256), (2, 7), (64, 512)):
        monitor = build(d, b, a, args.device, rnd)
        rng = np.random.default_rng(1)
        emb, smp, ends = synthetic(rng, args.episodes, 40, d, b, a)
        emb_t = torch.from_numpy(emb[:300]).to(args.device)
        smp_t = torch.from_numpy(smp[:300]).to(args.device)
        step = online_ms(monitor, emb_t, smp_t)
        vec, loop = offline_rate(monitor, emb, smp, ends)
        print(f"{rnd:>8}{b:>5}{a:>4}{d:>6} | {step:>8.3f} | {vec:>14,.0f}{loop:>12,.0f}{vec / loop:>9.1f}x", flush=True)


if __name__ == "__main__":
    main()
