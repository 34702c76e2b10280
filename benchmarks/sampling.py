"""Latency of one policy decision (encode + sample B chunks) for each policy kind and denoiser.

    python -m benchmarks.sampling [--device cpu|cuda] [--threads T] [--batch 1 8 32 64 256]

Default configs (launch/conf/policy/*.yaml): horizon 16, 2-step obs history of a 2-D position,
A = 2, embedding 64; U-Net widths (32, 64, 128); MLP 3 x 256; diffusion 16 DDIM steps, flow 10
Euler steps. Untrained weights: latency does not depend on them. Prints the median over repeats.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from policies import PolicyConfig, build_policy

SAMPLER_STEPS = {"diffusion": 16, "flow": 10}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def decision_latency(policy, batch: int, min_time: float = 0.5, min_repeats: int = 3) -> float:
    """Median seconds of encode + sample(B) for one observation, after a warm-up call."""
    device = policy.device
    obs = {"agent_pos": torch.randn(1, policy.n_obs_steps, 2, device=device)}
    gen = torch.Generator(device=device).manual_seed(0)
    policy.sample(policy.encode(obs), batch, generator=gen)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_repeats or time.perf_counter() - start < min_time:
        _sync(device)
        t0 = time.perf_counter()
        policy.sample(policy.encode(obs), batch, generator=gen)
        _sync(device)
        times.append(time.perf_counter() - t0)
        if len(times) >= 200:
            break
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8, 32, 64, 256])
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.processor() or platform.machine()} CPU"
    print(f"device: {device} ({name}), torch {torch.__version__}, threads {torch.get_num_threads()}")
    header = "| policy | denoiser | steps | " + " | ".join(f"B={b}" for b in args.batch) + " | " + " | ".join(f"x B={b}" for b in args.batch[1:]) + " |"
    print(header)
    print("|" + "---|" * (3 + 2 * len(args.batch) - 1))
    for kind in ("diffusion", "flow"):
        for denoiser in ("unet", "mlp"):
            torch.manual_seed(0)
            config = PolicyConfig(kind=kind, denoiser=denoiser, num_inference_steps=SAMPLER_STEPS[kind])
            policy = build_policy(config, {"agent_pos": (2,)}, 2).to(device).eval()
            ms = [decision_latency(policy, b) * 1e3 for b in args.batch]
            cells = [f"{m:.2f} ms" for m in ms] + [f"{m / ms[0]:.1f}" for m in ms[1:]]
            print(f"| {kind} | {denoiser} | {config.num_inference_steps} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
