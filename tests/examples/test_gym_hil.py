"""lerobot's gym-hil PandaPickCube through the bring-your-own-env path. Without gym-hil (it needs mujoco < 3.9, and
fiper's own environment has mujoco 4): the factory's message, severities checked before an env is built, the expert's
phases on constructed observations and the pipeline config composing. With it (examples/gym_hil/README.md): the
expert on a few seeds, the task's name and control period, and a 2-episode launch.collect by the documented command."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from example_pipeline import compose_example, shift_factories

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # the example is imported as examples.gym_hil, as from the repository root

from examples.gym_hil import envs as hil  # noqa: E402
from examples.gym_hil.expert import PickExpert  # noqa: E402

HAS_GYM_HIL = importlib.util.find_spec("gym_hil") is not None
needs_gym_hil = pytest.mark.skipif(not HAS_GYM_HIL, reason="gym-hil is not installed (it needs mujoco < 3.9): "
                                                           "examples/gym_hil/README.md says how to run these")


@pytest.mark.skipif(HAS_GYM_HIL, reason="gym-hil is installed")
def test_the_factory_without_gym_hil_names_the_install():
    with pytest.raises(ModuleNotFoundError, match=r"gym_hil/PandaPickCube-v0 needs gym-hil: pip install gym-hil in an "
                                                  r"environment of its own, since it needs mujoco < 3.9"):
        hil.make_hil()


@pytest.mark.parametrize("factory", [hil.wide_start, hil.heavy, hil.obs_noise])
def test_every_shift_refuses_a_severity_outside_0_1_before_an_env_is_built(factory):
    with pytest.raises(ValueError, match=rf"{factory.__name__}: severity must be a number in \[0, 1\], got 2.0"):
        factory(severity=2.0)


def _obs(tcp, cube):
    agent = np.zeros(18, np.float32)
    agent[15:18] = tcp
    return {"agent_pos": agent, "environment_state": np.asarray(cube, np.float32)}


def test_the_expert_goes_above_the_cube_down_closes_and_lifts():
    expert = PickExpert()
    expert.reset(0)
    cube = np.array([0.42, 0.0, 0.02])
    far = expert.act(_obs(cube + [0.1, 0.0, 0.2], cube), {})
    assert expert.strategy == "above" and np.allclose(far, [-1.0, 0.0, -1.0, 0.0])  # towards 6 cm above it, open, clipped
    expert.act(_obs(cube + [0.005, 0.0, 0.06], cube), {})
    assert expert.strategy == "down"
    closing = [expert.act(_obs(cube + [0.0, 0.0, 0.005], cube), {}) for _ in range(5)]
    assert [a[3] for a in closing] == [2.0] * 5 and np.allclose(closing[0][:3], 0.0) and expert.strategy == "lift"
    lift = expert.act(_obs(cube, cube), {})
    assert np.allclose(lift, [0.0, 0.0, 1.0, 2.0])
    expert.reset(1)
    assert expert.strategy == "above"


def test_the_pipeline_config_composes_with_its_cells_factories_and_outcome_sweep():
    cfg = compose_example("gym_hil", "pipeline_hil")
    assert cfg.train.checkpoint is None and cfg.collect.expert == "examples.gym_hil.expert:PickExpert"
    assert shift_factories(cfg, hil) == ["wide_start", "heavy", "obs_noise"]
    assert "context.action_mode=velocity" in cfg.act.overrides and "context.agent_pos_dims=[15,16,17]" in cfg.act.overrides


@needs_gym_hil
def test_the_env_is_named_from_gym_hil_steps_0_1_s_and_a_seed_fixes_the_cube():
    from fiper.control.period import control_period_s
    from fiper.env_factory import env_task_name

    env = hil.make_hil()
    assert env_task_name(env) == "gym_hil/PandaPickCube-v0" and control_period_s(env) == pytest.approx(0.1)
    cubes = [env.reset(seed=seed)[0]["environment_state"] for seed in (3, 4, 3)]
    assert np.array_equal(cubes[0], cubes[2]) and not np.array_equal(cubes[0], cubes[1])
    assert (np.abs(cubes[0][:2] - hil.CENTRE) <= hil.HALF_WIDTH).all()
    env.close()


@needs_gym_hil
def test_the_expert_lifts_the_cube_and_the_heaviest_cube_is_a_timeout():
    from fiper.collection import run_episode

    env = hil.make_hil()
    episodes = [run_episode(env, PickExpert(env), seed) for seed in range(3)]
    assert all(e.success for e in episodes) and all(len(e.data["action"]) < 40 for e in episodes)
    heavy = hil.heavy(severity=1.0)
    failed = run_episode(heavy, PickExpert(heavy), 0)
    assert not failed.success and (failed.failure_reason, failed.failure_step) == ("timeout", 99)
    env.close(), heavy.close()


@needs_gym_hil
def test_the_documented_collect_command_saves_two_demos_with_the_task_and_period(tmp_path):
    from fiper.storage import EpisodeStore

    out = tmp_path / "demos.zarr"
    done = subprocess.run([sys.executable, "-m", "launch.collect", "--config-dir", "examples/gym_hil/conf", "env=hil",
                           "expert=examples.gym_hil.expert:PickExpert", "n_episodes=2", f"out={out}", "++progress=false"],
                          cwd=ROOT, capture_output=True, text=True, env={**os.environ, "MUJOCO_GL": "egl"}, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    demos = EpisodeStore.open(out)
    assert demos.attrs["task"] == "gym_hil/PandaPickCube-v0" and demos.attrs["control_period_s"] == pytest.approx(0.1)
    assert demos.meta("success").all() and sorted(demos.data_keys) == ["action", "agent_pos", "environment_state"]
    assert "Reset delay" not in done.stdout + done.stderr  # gym-hil's line at every reset, filtered by the factory
