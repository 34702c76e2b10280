"""Cost of acting on an alarm: steering overhead per decision, the guidance hook alone, fallbacks.

    python -m benchmarks.interventions [--device cpu|cuda] [--threads T] [--batch 32 256]

Policies use the default configs of benchmarks.sampling (horizon 16, A = 2, U-Net, diffusion 16
DDIM steps, flow 10 Euler steps), untrained: latency does not depend on the weights. Steering uses
a keep-out + reach reward with repulsion and Feynman-Kac resampling on. Prints medians; plain and
steered sampling are called in turn, so their ratio is paired within each repeat.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from fiper.interventions import FallbackContext, KeepOut, Reach, Steering, WeightedSum, make_fallback
from fiper.protocol import GuidanceState
from policies import PolicyConfig, build_policy

SAMPLER_STEPS = {"diffusion": 16, "flow": 10}


def median_time(fn: Callable[[], object], device: torch.device, min_time: float = 0.5, min_repeats: int = 3) -> float:
    """Median seconds of ``fn()`` after one warm-up call."""
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_repeats or time.perf_counter() - start < min_time:
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
        if len(times) >= 500:
            break
    return statistics.median(times)


def paired_times(fns: list[Callable[[], object]], device: torch.device, repeats: int = 15) -> np.ndarray:
    """Seconds of each function, called in turn, repeat after repeat: (repeats, len(fns)), after one warm-up round."""
    def timed(fn: Callable[[], object]) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - t0
    for fn in fns:
        fn()
    return np.array([[timed(fn) for fn in fns] for _ in range(repeats)])


def reward() -> WeightedSum:
    return WeightedSum([(1.0, KeepOut([0.0, 0.0], radius=0.1, margin=0.02)), (0.1, Reach([0.5, 0.5]))])


def steering(batch: int) -> Steering:
    return Steering(reward(), num_particles=batch, guide_scale=2.0, repulsion_scale=0.5, fk_every=2, seed=0)


def bench_decisions(device: torch.device, batches: list[int]) -> None:
    print("\n| policy | B | plain sample | steered (steer) | overhead (median of paired ratios) |")
    print("|---|---|---|---|---|")
    for kind, steps in SAMPLER_STEPS.items():
        config = PolicyConfig(kind=kind, num_inference_steps=steps, horizon=16, n_action_steps=8)
        policy = build_policy(config, {"agent_pos": (2,)}, 2).to(device).eval()
        z = policy.encode({"agent_pos": torch.randn(1, policy.n_obs_steps, 2, device=device)})
        gen = torch.Generator(device=device).manual_seed(0)
        for b in batches:
            steer = steering(b)
            t = paired_times([lambda: policy.sample(z, b, generator=gen), lambda: steer.steer(policy, z, generator=gen)], device)
            plain, guided = np.median(t, axis=0)
            print(f"| {kind} | {b} | {plain * 1e3:.1f} ms | {guided * 1e3:.1f} ms | {np.median(t[:, 1] / t[:, 0]):.2f}x |")


def bench_hook(device: torch.device, batches: list[int]) -> None:
    print("\n| guidance hook alone (one call) | B | H | A | time |")
    print("|---|---|---|---|---|")
    for b in batches:
        for h, a in ((16, 2), (16, 7)):
            x0 = torch.randn(1, b, h, a, device=device) * 0.3
            st = Steering(reward(), num_particles=b, fk_every=1, repulsion_until=1.0, seed=0,
                          position_dims=(0, 1) if a == 2 else (0, 1, 2))
            s = GuidanceState(x=x0, x0=x0, step=1, n_steps=16, progress=2 / 16, kind="flow", noise_scale=1.0,
                              action_scale=torch.ones(a, device=device))
            t = median_time(lambda: st(s), device)
            print(f"| reward grad + repulsion + FK check | {b} | {h} | {a} | {t * 1e3:.2f} ms |")


def bench_fallbacks() -> None:
    print("\n| fallback | per act() |")
    print("|---|---|")
    ctx = FallbackContext(action_dim=7, position_dims=(0, 1, 2), gripper_dims=(6,))
    rng = np.random.default_rng(0)
    for a in rng.normal(size=(200, 7)):
        ctx.record(a, {"agent_pos": a[:3]})
    obs = {"agent_pos": np.zeros(3)}
    for name, kw in (("hold", {}), ("stop", {}), ("retreat", {"steps": 50, "speed": 0.01})):
        fb = make_fallback(name, **kw)
        fb.start(ctx)
        t = median_time(lambda: fb.act(obs, ctx), torch.device("cpu"))
        print(f"| {name} | {t * 1e6:.1f} µs |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--batch", type=int, nargs="+", default=[32, 256])
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"device: {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    bench_decisions(device, args.batch)
    bench_hook(device, args.batch)
    bench_fallbacks()


if __name__ == "__main__":
    main()
