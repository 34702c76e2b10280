"""lerobot's gym-pusht (PushT-v0), an env written without fiper (a dict of keypoints and the agent's position, absolute
pixel targets, a 0.1 s step of ten 0.01 s physics substeps), through the bring-your-own-env path: the example's
factories and expert, the control period, and every stage of launch.pipeline run by its documented command."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gym_pusht", reason="lerobot's Push-T env: pip install gym-pusht")
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # gym-pusht imports pygame

from example_pipeline import run_example_pipeline  # noqa: E402

from fiper.collection import run_episode  # noqa: E402
from fiper.control.period import control_period_s  # noqa: E402
from fiper.env_factory import env_task_name  # noqa: E402
from fiper.storage import EpisodeStore  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # the example is imported as examples.gym_pusht, as from the repository root

from examples.gym_pusht import envs as pusht  # noqa: E402
from examples.gym_pusht.expert import PushTExpert  # noqa: E402

SHIFTS = (pusht.slippery_floor, pusht.sluggish_agent, pusht.obs_noise)


def test_the_factories_give_the_keypoint_task_and_refuse_a_bad_severity():
    env = pusht.make_pusht()
    assert env_task_name(env) == "gym_pusht/PushT-v0" and env.spec.max_episode_steps == 300
    assert control_period_s(env) == pytest.approx(0.1)  # ten physics substeps of PushTEnv.dt = 0.01 s per step
    obs, _ = env.reset(seed=3)
    assert obs["environment_state"].shape == (16,) and obs["agent_pos"].shape == (2,)
    for shift in SHIFTS:
        np.testing.assert_array_equal(shift(severity=0.0).reset(seed=3)[0]["environment_state"], obs["environment_state"])
        with pytest.raises(ValueError, match=rf"{shift.__name__}: severity must be a number in \[0, 1\], got 1.5"):
            shift(severity=1.5)
    noisy, half = (pusht.obs_noise(severity=s).reset(seed=3)[0] for s in (1.0, 0.5))
    full_std = np.std(noisy["environment_state"] - obs["environment_state"])
    assert abs(full_std - 4.0) < 1.5  # std 4 px on the keypoints at severity 1 (16 seeded draws)
    assert np.std(half["environment_state"] - obs["environment_state"]) == pytest.approx(full_std / 2)  # linear in severity
    np.testing.assert_array_equal(noisy["agent_pos"], obs["agent_pos"])  # the measured position a hold holds stays exact
    assert pusht.slippery_floor(severity=1.0).unwrapped.damping == pytest.approx(0.05)
    assert pusht.sluggish_agent(severity=1.0).unwrapped.k_p == pytest.approx(30.0)
    assert pusht.make_pusht(success_threshold=0.5).unwrapped.success_threshold == 0.5
    with pytest.raises(ValueError, match=r"success_threshold must be the share of the goal covered, in \(0, 1\], got 95"):
        pusht.make_pusht(success_threshold=95)
    with pytest.raises(ValueError, match="obs_type='pixels'.*low-dim observations"):
        pusht.make_pusht(obs_type="pixels")


def test_the_expert_pushes_the_t_home_on_most_seeds():
    env = pusht.make_pusht()
    episodes = [run_episode(env, PushTExpert(env), seed) for seed in range(5)]
    assert sum(e.success for e in episodes) >= 4  # README: over seeds 0-49
    assert all(e.length < 300 and e.failure_step == -1 for e in episodes if e.success)
    with pytest.raises(ValueError, match="PushTExpert drives gym-pusht's PushT-v0"):
        import gymnasium as gym

        PushTExpert(gym.make("Pendulum-v1"))


@pytest.mark.slow
def test_the_experts_episode_of_a_seed_is_the_same_in_every_process():
    """The expert orders the T's shapes itself (pymunk keeps them in a set ordered by memory address), so a seed's
    demonstration is the same in fresh processes and the collect stage is reproducible."""
    import subprocess

    script = ("import hashlib, numpy as np\nfrom examples.gym_pusht.envs import make_pusht\n"
              "from examples.gym_pusht.expert import PushTExpert\nfrom fiper.collection import run_episode\n"
              "env = make_pusht()\nep = run_episode(env, PushTExpert(env), seed=4)\n"
              "print(hashlib.sha256(np.ascontiguousarray(ep.data['action']).tobytes()).hexdigest())\n")
    root = Path(__file__).resolve().parents[2]
    runs = [subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=root, timeout=120,
                           env={**os.environ, "PYTHONPATH": str(root)}) for _ in range(3)]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr[-2000:]
    assert len({r.stdout.split()[-1] for r in runs}) == 1


def test_the_documented_pipeline_command_runs_every_stage(tmp_path):
    """python -m launch.pipeline --config-dir examples/gym_pusht/conf --config-name pipeline_pusht, tiny. A policy trained
    30 steps never covers 95 % of the goal, so success here is 5 % coverage (env.kwargs.success_threshold=0.05): every
    stage needs in-distribution successes to fit and calibrate on. The tiny run trains the MLP denoiser (the config's
    U-Net at 30 steps can end every 5 % success at its first step, which leaves the clock reference nothing to calibrate)."""
    run_dir = tmp_path / "run"
    done = run_example_pipeline(
        "gym_pusht", run_dir, cells="[[none,[0.0]],[slippery_floor,[1.0]],[obs_noise,[1.0]]]", demos=4, steps=30,
        seeds_per_cell=2, env_overrides="'++progress=false','++env.kwargs.success_threshold=0.05'", extra=("train.policy=diffusion_mlp", "act.seeds_per_cell=1", "act.cells=[[none,[0.0]]]", "act.responses=[hold]", "act.videos=false"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    demos = EpisodeStore.open(run_dir / "demos.zarr")
    assert demos.attrs["task"] == "gym_pusht/PushT-v0" and demos.data_keys == ["action", "agent_pos", "environment_state"]
    assert demos.attrs["control_period_s"] == pytest.approx(0.1)
    stress = EpisodeStore.open(run_dir / "stress.zarr")
    assert stress.attrs["control_period_s"] == pytest.approx(0.1)
    assert sorted(set(stress.meta("shift").astype(str))) == ["none", "obs_noise", "slippery_floor"]
    metrics = json.loads((run_dir / "evaluation" / "metrics.json").read_text())
    assert metrics["tasks"]["gym_pusht/PushT-v0"]["control_period_s"] == pytest.approx(0.1)
    outcome = json.loads((run_dir / "act" / "outcome.json").read_text())
    assert outcome["task"] == "gym_pusht/PushT-v0"
