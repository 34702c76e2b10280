"""Environment speed: low-dim control steps/s per task on one core, and image render time.

    python -m benchmarks.envs [--steps 3000]

Low-dim: replays one recorded expert episode (contact-rich, like real use) over and over,
resetting at its end, and times env.step + env.reset only. Targets: >= 2,000 control steps/s
per task on one core; <= 2 ms per 96x96 frame on CPU. CPU time (process_time) is reported
beside wall time because other processes on a shared machine inflate the latter.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

import envs


def recorded_actions(task: str, seed: int = 0) -> list[np.ndarray]:
    env = envs.make_env(task)
    expert = envs.make_expert(env)
    obs, info = env.reset(seed=seed)
    expert.reset(seed)
    actions, done = [], False
    while not done:
        actions.append(expert.act(obs, info))
        obs, _, terminated, truncated, info = env.step(actions[-1])
        done = terminated or truncated
    return actions


def step_rate(task: str, n_steps: int) -> tuple[float, float]:
    """(steps per CPU second, steps per wall second) replaying an expert episode."""
    actions = recorded_actions(task)
    env = envs.make_env(task)
    env.reset(seed=0)
    cpu, wall = time.process_time(), time.perf_counter()
    i = 0
    for _ in range(n_steps):
        _, _, terminated, truncated, _ = env.step(actions[i])
        i += 1
        if terminated or truncated or i == len(actions):
            env.reset(seed=0)
            i = 0
    return n_steps / (time.process_time() - cpu), n_steps / (time.perf_counter() - wall)


def render_ms(task: str, n_frames: int) -> tuple[float, float, float]:
    """(CPU ms, wall ms) per 96x96 frame of the observation camera, wall ms per image-mode step."""
    env = envs.make_env(task, obs_mode="image")
    env.reset(seed=0)
    camera = env._camera
    for _ in range(20):
        camera.render(env.data)
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(n_frames):
        camera.render(env.data)
    frame_cpu = (time.process_time() - cpu) / n_frames * 1e3
    frame_wall = (time.perf_counter() - wall) / n_frames * 1e3
    actions = recorded_actions(task)[:50]
    env.reset(seed=0)
    t = time.perf_counter()
    for a in actions:
        env.step(a)
    return frame_cpu, frame_wall, (time.perf_counter() - t) / len(actions) * 1e3


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--frames", type=int, default=300)
    args = p.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    ok, reason = envs.gl_status()
    print(f"mujoco steps at 10 Hz control; GL: {os.environ.get('MUJOCO_GL', '')} {'ok' if ok else reason}\n")
    print("| task | low-dim steps/s (CPU) | low-dim steps/s (wall) | 96x96 frame ms (CPU) | 96x96 frame ms (wall) | image-mode step ms (wall) |")
    print("|---|---|---|---|---|---|")
    for task in envs.TASKS:
        cpu, wall = step_rate(task, args.steps)
        frame_cpu, frame_wall, step = render_ms(task, args.frames) if ok else (float("nan"),) * 3
        print(f"| {task} | {cpu:,.0f} | {wall:,.0f} | {frame_cpu:.2f} | {frame_wall:.2f} | {step:.2f} |", flush=True)


if __name__ == "__main__":
    main()
