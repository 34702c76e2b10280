"""Acting on alarms in pick-and-place: monitor alone vs + fallback vs + steering, same seeds.

    python -m benchmarks.intervention_outcome --monitor runs/demo/monitor [--seeds 20] [--nominal-seeds 100] [--policy DIR]

For the nominal task and the obstacle shift (severities 0.6 and 1.0) every mode runs the same
seeds with a policy (the shipped one by default; an image policy renders its observations) and a
fitted, calibrated monitor:
  monitor      alarms are recorded, nothing else happens
  fallback     alarm -> hold position until the episode ends
  steer        alarm -> VLS-style steering with a keep-out reward around the obstacle (the
               obstacle's position comes from the environment, as a vision-language model would
               read it from the scene), graded response without fallback
  steer-always steering from the first decision (the upper bound if the monitor fired at once)
Prints success rate per mode and cell, and the would-be failures (of 'monitor') that steering
recovered.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

import envs
from fiper.control import MonitoredPolicy
from fiper.interventions import FallbackContext, GradedResponse, HoldPosition, SceneKeepOut, Steering
from fiper.monitor import load_monitor
from policies import load_policy
from policies.normalizer import is_image_shape

CHECKPOINT = Path(__file__).resolve().parents[1] / "launch" / "checkpoints" / "pick_place_diffusion_mlp"
STEER = dict(position_dims=(0, 1, 2), guide_scale=40.0, fk_lambda=20.0, grad_floor=0.5, lateral_only=True, direction_space="env")


def obs_mode(policy) -> str:
    """'image' when the policy reads an image key, else 'lowdim'."""
    return "image" if any(is_image_shape(tuple(s)) for s in policy.obs_shapes.values()) else "lowdim"


def run(policy, monitor, mode: str, severity: float, seed: int) -> bool:
    env = envs.make_env("pick_place", obs_mode=obs_mode(policy), shifts=[("obstacle", severity)] if severity > 0 else None)
    obs, info = env.reset(seed=seed)
    context = FallbackContext(action_dim=policy.action_dim, position_dims=[0, 1, 2], gripper_dims=[3])
    response = None
    if mode == "fallback":
        response = GradedResponse(fallback=HoldPosition())
    elif mode.startswith("steer"):
        response = GradedResponse(steering=Steering(SceneKeepOut(margin=0.03), num_particles=monitor.identity.num_samples, **STEER),
                                  max_steer_decisions=10**6)
    agent = MonitoredPolicy(policy, monitor, response=response, context=context if mode == "fallback" else None)
    agent.reset(seed=seed)
    agent.bind_env(env)  # the keep-out reward reads this episode's obstacle
    if mode == "steer-always":
        response.mode = "steer"
    done = False
    while not done:
        obs, _, terminated, truncated, info = env.step(agent.act(obs))
        done = terminated or truncated
    env.close()
    return bool(info.get("success", False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--monitor", required=True, help="fitted + calibrated monitor directory (e.g. runs/demo/monitor)")
    parser.add_argument("--seeds", type=int, default=20, help="seeds per obstacle cell")
    parser.add_argument("--nominal-seeds", type=int, default=None,
                        help="seeds for the nominal cell (default --seeds); >= 50 resolves the 2-point nominal-drop limit")
    parser.add_argument("--start", type=int, default=40000)
    parser.add_argument("--policy", default=str(CHECKPOINT), help="policy checkpoint directory (default: the shipped low-dim policy)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    policy = load_policy(args.policy)
    monitor = load_monitor(args.monitor, policy=policy)
    modes = ("monitor", "fallback", "steer", "steer-always")
    print(f"{'cell':<14}" + "".join(f"{m:>14}" for m in modes) + f"{'recovered':>12}")
    for severity in (0.0, 0.6, 1.0):
        count = args.nominal_seeds if severity == 0 and args.nominal_seeds else args.seeds
        seeds = range(args.start, args.start + count)
        results = {m: np.array([run(policy, monitor, m, severity, s) for s in seeds]) for m in modes}
        failed = ~results["monitor"]
        recovered = f"{int((results['steer'] & failed).sum())}/{int(failed.sum())}"
        cell = "nominal" if severity == 0 else f"obstacle {severity:.1f}"
        print(f"{cell:<14}" + "".join(f"{results[m].mean():>14.2f}" for m in modes) + f"{recovered:>12}", flush=True)


if __name__ == "__main__":
    main()
