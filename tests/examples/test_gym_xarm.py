"""lerobot's gym-xarm XarmLift through the bring-your-own-env path. Without gym-xarm (it needs mujoco < 3, and fiper's
own environment has mujoco 4): the factory's message, severities checked before an env is built, the expert's phases
on constructed observations and the pipeline config composing. With it (examples/gym_xarm/README.md): the expert on a
few seeds and a heavy cube's timeout, the task's name, period and seeded start, and a 2-episode launch.collect by the
documented command."""

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
sys.path.insert(0, str(ROOT))  # the example is imported as examples.gym_xarm, as from the repository root

from examples.gym_xarm import envs as xarm  # noqa: E402
from examples.gym_xarm.expert import LiftExpert  # noqa: E402

HAS_GYM_XARM = importlib.util.find_spec("gym_xarm") is not None
needs_gym_xarm = pytest.mark.skipif(not HAS_GYM_XARM, reason="gym-xarm is not installed (it needs mujoco < 3): "
                                                             "examples/gym_xarm/README.md says how to run these")


@pytest.mark.skipif(HAS_GYM_XARM, reason="gym-xarm is installed")
def test_the_factory_without_gym_xarm_names_the_install():
    with pytest.raises(ModuleNotFoundError, match=r"gym_xarm/XarmLift-v0 needs gym-xarm: pip install gym-xarm in an "
                                                  r"environment of its own, since it needs mujoco < 3"):
        xarm.make_xarm()


@pytest.mark.parametrize("factory", [xarm.wide_start, xarm.heavy, xarm.obs_noise])
def test_every_shift_refuses_a_severity_outside_0_1_before_an_env_is_built(factory):
    with pytest.raises(ValueError, match=rf"{factory.__name__}: severity must be a number in \[0, 1\], got 2.0"):
        factory(severity=2.0)


def _obs(grasp, cube):
    obs = np.zeros(28)
    obs[0:3], obs[6:9] = grasp, cube
    return obs


def test_the_expert_goes_above_the_cube_down_closes_and_lifts():
    expert = LiftExpert()
    expert.reset(0)
    cube = np.array([-0.15, -0.1, -0.07])
    far = expert.act(_obs(cube + [-0.1, 0.0, 0.1], cube), {})
    assert expert.strategy == "above" and np.allclose(far, [1.0, 0.0, -1.0, -1.0])  # towards 5 cm above it, open, clipped
    assert far.dtype == np.float32
    expert.act(_obs(cube + [0.005, 0.0, 0.05], cube), {})
    assert expert.strategy == "down"
    closing = [expert.act(_obs(cube + [0.0, 0.0, 0.005], cube), {}) for _ in range(9)]
    assert [a[3] for a in closing] == [1.0] * 9 and np.allclose(closing[0][:3], 0.0) and expert.strategy == "lift"
    lift = expert.act(_obs(cube, cube), {"obs": None})
    assert np.allclose(lift, [0.0, 0.0, 1.0, 1.0])
    assert np.allclose(expert.act({"obs": _obs(cube, cube)}, {}), lift)  # the observation as fiper stores it
    expert.reset(1)
    assert expert.strategy == "above"


def test_the_pipeline_config_composes_with_its_cells_factories_and_outcome_sweep():
    cfg = compose_example("gym_xarm", "pipeline_xarm")
    assert cfg.train.checkpoint is None and cfg.collect.expert == "examples.gym_xarm.expert:LiftExpert"
    assert shift_factories(cfg, xarm) == ["wide_start", "heavy", "obs_noise"]
    assert "context.action_mode=velocity" in cfg.act.overrides and "context.agent_pos_key=obs" in cfg.act.overrides


@needs_gym_xarm
def test_the_env_is_named_from_gym_xarm_a_seed_fixes_the_cube_after_another_episode_and_it_renders():
    from fiper.control.period import control_period_s
    from fiper.env_factory import env_task_name

    env = xarm.make_xarm(render_mode="rgb_array")
    assert env_task_name(env) == "gym_xarm/XarmLift-v0" and control_period_s(env) == pytest.approx(0.04)
    first = env.reset(seed=3)[0]
    env.reset(seed=4)
    for _ in range(20):  # the gripper closed: gym-xarm's own reset would keep its command
        env.step(np.array([0.5, 0.0, -0.5, 1.0], np.float32))
    assert np.array_equal(env.reset(seed=3)[0], first)
    assert (np.abs(first[6:8] - xarm.CENTRE) <= xarm.HALF_WIDTH + 1e-9).all()
    assert env.render().shape == (xarm.RENDER_SIZE, xarm.RENDER_SIZE, 3)
    env.close()


@needs_gym_xarm
def test_the_expert_lifts_the_cube_and_the_heaviest_cube_is_a_timeout():
    from fiper.collection import run_episode

    env = xarm.make_xarm()
    episodes = [run_episode(env, LiftExpert(env), seed) for seed in range(3)]
    assert all(e.success for e in episodes) and all(len(e.data["action"]) < 125 for e in episodes)
    heavy = xarm.heavy(severity=1.0)
    failed = run_episode(heavy, LiftExpert(heavy), 0)
    assert not failed.success and (failed.failure_reason, failed.failure_step) == ("timeout", xarm.MAX_STEPS - 1)
    env.close(), heavy.close()


@needs_gym_xarm
def test_the_documented_collect_command_saves_two_demos_with_the_task_and_period(tmp_path):
    from fiper.storage import EpisodeStore

    out = tmp_path / "demos.zarr"
    done = subprocess.run([sys.executable, "-m", "launch.collect", "--config-dir", "examples/gym_xarm/conf", "env=xarm",
                           "expert=examples.gym_xarm.expert:LiftExpert", "n_episodes=2", f"out={out}", "++progress=false"],
                          cwd=ROOT, capture_output=True, text=True, env={**os.environ, "MUJOCO_GL": "egl"}, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    demos = EpisodeStore.open(out)
    assert demos.attrs["task"] == "gym_xarm/XarmLift-v0" and demos.attrs["control_period_s"] == pytest.approx(0.04)
    assert demos.meta("success").all() and sorted(demos.data_keys) == ["action", "obs"]
