"""What the sweep tests share: a one-cell stress sweep of the shipped pick-and-place policy, and a
subprocess runner that keeps its output for the assertion messages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "launch" / "checkpoints" / "pick_place_diffusion_mlp"

# Two short episodes per job (20 env steps, 4 samples per decision, no monitor): seconds per job.
TINY_STRESS = [f"policy_dir={POLICY}", "env=pick_place", "+env.kwargs.max_episode_steps=20", "cells=[[none,[0.0]]]",
               "seeds.count=2", "num_samples=4", "progress=false", "out=sweep/stress_${seeds.start}.zarr"]


def run_module(module: str, args: list[str], cwd: Path, timeout: float = 240, env: dict[str, str] | None = None
               ) -> subprocess.CompletedProcess:
    """``python -m <module> <args>`` in ``cwd`` with the repository importable, EGL rendering and ``env`` added."""
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"), "PYTHONPATH": str(ROOT),
           "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0", **(env or {})}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def shown(proc: subprocess.CompletedProcess) -> str:
    return f"exit {proc.returncode}\n--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}"
