"""Per-decision latency in the control loop: bare policy, monitored policy, steered decision, and the monitored
policy with a hard deadline on its calls (DeadlinePolicy) or on the monitor's step (DeadlineMonitor): each call
handed to a worker thread.

    python -m benchmarks.runtime [--kind flow] [--denoiser mlp] [--threads 1] [--batch 8 32 256]

For each B: one decision (encode + sample + monitor + choose the chunk) through MonitoredPolicy
without a monitor, with a fitted RND-OE + ACE monitor, and with the graded response in steering
mode (guided re-sampling with a keep-out reward, repulsion and Feynman-Kac resampling, ACE left
out), and the monitored one again through DeadlinePolicy and through DeadlineMonitor (deadlines never reached).
They run in turn on the same observation, repeat after repeat, so every ratio comes
from one run under the same load: the printed ratio is the median over repeats of the paired
ratio (decision / bare decision of the same repeat). On a CPU the per-thread CPU time is printed
too (it ignores time spent waiting for a core on a shared machine). On CUDA the synchronisations
per decision are counted with ``torch.cuda.set_sync_debug_mode``. Networks are untrained (latency
does not depend on the weights).
"""

from __future__ import annotations

import argparse
import platform
import time
import warnings

import numpy as np
import torch

from fiper.control import DeadlineMonitor, DeadlinePolicy, MonitoredPolicy
from fiper.interventions import GradedResponse, KeepOut, Steering
from fiper.monitor import PolicyIdentity
from fiper.monitor.fitting import fit_monitor
from fiper.scores.base import ScoreFitData
from policies import PolicyConfig, build_policy

OBS = {"agent_pos": (2,), "object": (4,)}
KINDS = ("bare", "monitored", "steered", "deadline", "monitor_deadline")
MONITOR_TARGET = 1.2  # a monitored decision at B = 32, as a multiple of the unmonitored one
STEER_TARGET = 3.0  # a steered decision, at every B


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


def make_agents(policy, b: int, device: str) -> dict[str, MonitoredPolicy]:
    """The wrappers of one policy: no monitor, RND-OE + ACE, steering (B particles), RND-OE + ACE with a deadline on
    the policy's calls, and on the monitor's step."""
    monitor = make_monitor(policy, b, device)
    steering = Steering(KeepOut(center=[0.0, 0.0], radius=0.05), num_particles=b)
    return {"bare": MonitoredPolicy(policy, None, num_samples=b), "monitored": MonitoredPolicy(policy, monitor),
            "steered": MonitoredPolicy(policy, monitor, response=GradedResponse(steering=steering)),
            "deadline": MonitoredPolicy(DeadlinePolicy(policy, deadline_ms=60_000), monitor),
            "monitor_deadline": MonitoredPolicy(policy, DeadlineMonitor(monitor, deadline_ms=60_000))}


def decide(agent: MonitoredPolicy, name: str, obs: dict[str, np.ndarray]) -> None:
    """One decision: the action queue is emptied so that act() decides; the steered agent is kept steering."""
    agent.queue.clear()
    if name == "steered":
        agent.response.mode = "steer"
    agent.act(obs)


def time_decisions(agents: dict[str, MonitoredPolicy], repeats: int, warmup: int = 3) -> dict[str, np.ndarray]:
    """Wall and CPU seconds of each agent's decisions, (repeats, 2) per agent, taken in turn on the same observations."""
    rng = np.random.default_rng(2)
    for agent in agents.values():
        agent.reset(seed=0)
    out = {name: [] for name in agents}
    for i in range(warmup + repeats):
        obs = random_obs(rng)
        for name, agent in agents.items():
            wall, cpu = time.perf_counter(), time.thread_time()
            decide(agent, name, obs)
            if i >= warmup:
                out[name].append((time.perf_counter() - wall, time.thread_time() - cpu))
    return {name: np.asarray(v) for name, v in out.items()}


def count_cuda_syncs(agents: dict[str, MonitoredPolicy]) -> dict[str, int]:
    """Synchronisations of one decision per agent, as torch.cuda's sync debug mode reports them."""
    rng = np.random.default_rng(3)
    counts = {}
    for name, agent in agents.items():
        decide(agent, name, random_obs(rng))  # warm: lazy initialisation is not part of a decision
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                decide(agent, name, random_obs(rng))
            finally:
                torch.cuda.set_sync_debug_mode("default")
        counts[name] = sum("synchroniz" in str(w.message) for w in caught)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", default="flow", choices=["diffusion", "flow"])
    parser.add_argument("--denoiser", default="mlp", choices=["mlp", "unet"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--batch", type=int, nargs="+", default=[8, 32, 256])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cuda = args.device.startswith("cuda")
    name = torch.cuda.get_device_name() if cuda else f"{platform.machine()} CPU, {args.threads} thread(s)"
    print(f"device: {name}; torch {torch.__version__}; policy: {args.kind}/{args.denoiser} (default config); "
          f"{args.repeats} repeats, medians; ratios paired within each repeat")
    head = (f"{'B':>5} | {'bare ms':>8} | {'monitored ms':>12} {'ratio':>6} | {'steered ms':>10} {'ratio':>6} | "
            f"{'deadline / monitored':>20} | {'monitor deadline / monitored':>28}")
    print(head + ("" if cuda else f" | {'CPU-time ratios mon / steer':>27}") + (" | syncs bare / mon / steer / mon under DeadlineMonitor" if cuda else ""))
    policy = make_policy(args.kind, args.denoiser, args.device)
    steered = {}
    for b in args.batch:
        agents = make_agents(policy, b, args.device)
        t = time_decisions(agents, args.repeats)
        wall = {k: float(np.median(t[k][:, 0])) * 1e3 for k in KINDS}
        ratio = {k: float(np.median(t[k][:, 0] / t["bare"][:, 0])) for k in KINDS}
        cpu = {k: float(np.median(t[k][:, 1] / t["bare"][:, 1])) for k in KINDS}
        line = (f"{b:>5} | {wall['bare']:>8.2f} | {wall['monitored']:>12.2f} {ratio['monitored']:>6.2f} | "
                f"{wall['steered']:>10.2f} {ratio['steered']:>6.2f} | "
                f"{float(np.median(t['deadline'][:, 0] / t['monitored'][:, 0])):>20.3f} | "
                f"{float(np.median(t['monitor_deadline'][:, 0] / t['monitored'][:, 0])):>28.3f}")
        if cuda:
            syncs = count_cuda_syncs(agents)
            line += f" | {syncs['bare']} / {syncs['monitored']} / {syncs['steered']} / {syncs['monitor_deadline']}"
        else:
            line += f" | {cpu['monitored']:>13.2f} / {cpu['steered']:<11.2f}"
        print(line, flush=True)
        steered[b] = ratio["steered"]
        if b == 32:
            target = ratio["monitored"]
    if 32 in args.batch:
        print(f"target monitored / bare <= {MONITOR_TARGET} at B = 32: {target:.2f} ({'met' if target <= MONITOR_TARGET else 'not met'})")
    worst = max(steered.values())
    print(f"target steered / bare <= {STEER_TARGET} at every B: worst {worst:.2f} ({'met' if worst <= STEER_TARGET else 'not met'})")


if __name__ == "__main__":
    main()
