"""A monitored-rollout recorder killed mid-episode leaves every earlier episode readable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

from fiper.storage import EpisodeStore

REPO = Path(__file__).resolve().parents[2]
CHECKPOINT = REPO / "launch" / "checkpoints" / "pick_place_diffusion_mlp"

RECORDER = textwrap.dedent(
    """
    import sys, torch
    torch.set_num_threads(1)
    import envs
    from fiper.control import MonitoredPolicy, RolloutRecorder, run_episode
    from policies import load_policy
    agent = MonitoredPolicy(load_policy(sys.argv[2]), None, num_samples=4)
    recorder = RolloutRecorder(sys.argv[1], attrs={"task": "pick_place"})
    env = envs.make_env("pick_place", max_episode_steps=30)
    seed = 0
    while True:
        result = run_episode(env, agent, seed=seed, labels={"shift": "none", "severity": 0.0})
        recorder.write(result.steps, result.decisions, result.labels)
        print(seed, len(result.steps["action"]), flush=True)
        seed += 1
    """
)


def test_killed_recorder_keeps_earlier_episodes(tmp_path):
    path = tmp_path / "rollouts.zarr"
    env = {**os.environ, "PYTHONPATH": str(REPO), "MUJOCO_GL": "disable"}
    proc = subprocess.Popen([sys.executable, "-c", RECORDER, str(path), str(CHECKPOINT)], stdout=subprocess.PIPE, env=env, text=True)
    written = [proc.stdout.readline().split() for _ in range(2)]  # two episodes committed
    time.sleep(0.3)  # somewhere inside the third episode, or writing it
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    store = EpisodeStore.open(path)
    assert store.n_episodes >= 2
    for i, (seed, steps) in enumerate(written):
        assert store.meta("seed")[i] == int(seed) and store.episode_lengths[i] == int(steps)
        dec = store.episode_decisions(i)
        assert dec["samples"].shape[1:] == (4, 16, 4) and np.all(np.isfinite(dec["embedding"]))
        np.testing.assert_array_equal(dec["env_step"], np.arange(len(dec["env_step"])) * 4)
