"""Per-decision latency in the control loop: bare policy, monitored policy, steered decision.

    python -m benchmarks.runtime [--kind flow] [--denoiser mlp] [--threads 1]

For B in {8, 32, 256}: the median time of one decision (encode + sample + monitor + choose the
chunk) through MonitoredPolicy without a monitor, with a fitted RND-OE + ACE monitor, and with
the graded response in steering mode (guided re-sampling with a keep-out reward), each as a ratio
to the unmonitored decision. Networks are untrained (latency does not depend on the weights).
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from fiper.control import MonitoredPolicy
from fiper.interventions import GradedResponse, KeepOut, Steering
from fiper.monitor import PolicyIdentity
from fiper.monitor.fitting import fit_monitor
from fiper.scores.base import ScoreFitData
from policies import PolicyConfig, build_policy

OBS = {"agent_pos": (2,), "object": (4,)}


def make_policy(kind: str, denoiser: str, device: str):
    policy = build_policy(PolicyConfig(kind=kind, denoiser=denoiser), OBS, 2).to(device)
    rng = np.random.default_rng(0)
    policy.fit_normalizer({k: rng.uniform(-0.3, 0.3, (500, *s)).astype(np.float32) for k, s in OBS.items()},
                          rng.uniform(-0.3, 0.3, (500, 2)).astype(np.float32))
    return policy


def random_obs(rng) -> dict[str, np.ndarray]:
    return {k: rng.uniform(-0.2, 0.2, s).astype(np.float32) for k, s in OBS.items()}


def make_monitor(policy, b: int, device: str):
    rng = np.random.default_rng(1)
    obs = {k: torch.as_tensor(rng.uniform(-0.2, 0.2, (120, policy.n_obs_steps, *s)), dtype=torch.float32, device=device) for k, s in OBS.items()}
    with torch.no_grad():
        z = policy.encode(obs)
        samples = policy.sample(z, b)
    ends = np.arange(10, 121, 10)
    scores = {"rnd_oe": {"score": "rnd_oe", "train": {"max_epochs": 2}}, "ace": {"score": "ace", "dims": [0, 1]}}
    monitor = fit_monitor(ScoreFitData(z, samples, ends, device=device), PolicyIdentity.of(policy, b), scores=scores)
    monitor.calibrate(monitor.score_offline(z, samples, ends), ends, delta=0.1)
    return monitor


def decision_ms(agent: MonitoredPolicy, repeats: int, steer: bool = False) -> float:
    rng = np.random.default_rng(2)
    agent.reset(seed=0)
    times = []
    for i in range(repeats + 3):
        agent.queue.clear()  # force a decision at every call
        if steer:
            agent.response.mode = "steer"
        obs = random_obs(rng)
        t = time.perf_counter()
        agent.act(obs)
        if i >= 3:
            times.append(time.perf_counter() - t)
    return float(np.median(times) * 1e3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kind", default="flow", choices=["diffusion", "flow"])
    parser.add_argument("--denoiser", default="mlp", choices=["mlp", "unet"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    name = torch.cuda.get_device_name() if args.device == "cuda" else f"{platform.machine()} CPU, {args.threads} thread(s)"
    print(f"device: {name}; policy: {args.kind}/{args.denoiser} (default config)")
    print(f"{'B':>5} | {'bare ms':>9} | {'monitored ms':>12} {'ratio':>6} | {'steered ms':>10} {'ratio':>6}")
    policy = make_policy(args.kind, args.denoiser, args.device)
    for b in (8, 32, 256):
        monitor = make_monitor(policy, b, args.device)
        steering = Steering(KeepOut(center=[0.0, 0.0], radius=0.05), num_particles=b)
        bare = decision_ms(MonitoredPolicy(policy, None, num_samples=b), args.repeats)
        monitored = decision_ms(MonitoredPolicy(policy, monitor), args.repeats)
        steered = decision_ms(MonitoredPolicy(policy, monitor, response=GradedResponse(steering=steering)), args.repeats, steer=True)
        print(f"{b:>5} | {bare:>9.2f} | {monitored:>12.2f} {monitored / bare:>6.2f} | {steered:>10.2f} {steered / bare:>6.2f}", flush=True)


if __name__ == "__main__":
    main()
