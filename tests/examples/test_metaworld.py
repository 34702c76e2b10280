"""Meta-World's push-v3 through the bring-your-own-env path. Without metaworld (it pins mujoco 3.3, and fiper's own
environment has mujoco 4): the factory's message, severities checked before an env is built and the pipeline config
composing. With it (examples/metaworld_push/README.md): the task's name and period, a seed fixing the start, the
scripted expert on a few seeds and a heavy puck's timeout, and a 2-episode launch.collect by the documented command."""

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
sys.path.insert(0, str(ROOT))  # the example is imported as examples.metaworld_push, as from the repository root

from examples.metaworld_push import envs as mw  # noqa: E402

HAS_METAWORLD = importlib.util.find_spec("metaworld") is not None
needs_metaworld = pytest.mark.skipif(not HAS_METAWORLD, reason="metaworld is not installed (it pins mujoco 3.3): "
                                                               "examples/metaworld_push/README.md says how to run these")


@pytest.mark.skipif(HAS_METAWORLD, reason="metaworld is installed")
def test_the_factory_without_metaworld_names_the_install():
    with pytest.raises(ModuleNotFoundError, match=r"Meta-World's push-v3 needs metaworld: pip install metaworld in an "
                                                  r"environment of its own, since it pins mujoco 3.3"):
        mw.make_metaworld()


@pytest.mark.parametrize("factory", [mw.wide_start, mw.heavy, mw.obs_noise])
def test_every_shift_refuses_a_severity_outside_0_1_before_an_env_is_built(factory):
    with pytest.raises(ValueError, match=rf"{factory.__name__}: severity must be a number in \[0, 1\], got 2.0"):
        factory(severity=2.0)


def test_the_pipeline_config_composes_with_its_cells_factories_and_outcome_sweep():
    cfg = compose_example("metaworld_push", "pipeline_metaworld_push")
    assert cfg.train.checkpoint is None and cfg.collect.expert == "examples.metaworld_push.expert:ScriptedExpert"
    assert cfg.task == "metaworld_push"
    assert shift_factories(cfg, mw) == ["wide_start", "heavy", "obs_noise"]
    assert "context.action_mode=velocity" in cfg.act.overrides and "context.agent_pos_key=obs" in cfg.act.overrides


@needs_metaworld
def test_the_env_is_named_from_its_class_steps_0_0125_s_and_a_seed_fixes_the_start():
    from fiper.control.period import control_period_s
    from fiper.env_factory import declared_step_limit, env_task_name

    env = mw.make_metaworld()
    assert env_task_name(env) == "SawyerPushEnvV3" and control_period_s(env) == pytest.approx(0.0125)
    assert declared_step_limit(env) == mw.MAX_EPISODE_STEPS
    starts = [env.reset(seed=seed)[0] for seed in (3, 4, 3)]
    assert np.array_equal(starts[0], starts[2]) and not np.array_equal(starts[0][4:7], starts[1][4:7])
    assert np.any(starts[0][-3:] != 0)  # the goal is observed
    wide = mw.wide_start(severity=1.0).unwrapped._random_reset_space
    assert np.allclose(wide.low[:2], [-0.2, 0.55]) and np.allclose(wide.high[:2], [0.2, 0.75])
    env.close()


@needs_metaworld
def test_the_scripted_expert_pushes_the_puck_and_the_heaviest_puck_is_a_timeout():
    from examples.metaworld_push.expert import ScriptedExpert
    from fiper.collection import run_episode

    env = mw.make_metaworld()
    episodes = [run_episode(env, ScriptedExpert(env), seed) for seed in range(3)]
    assert all(e.success for e in episodes) and all(len(e.data["action"]) < 80 for e in episodes)
    assert all(np.abs(e.data["action"]).max() <= 1.0 for e in episodes)
    heavy = mw.heavy(severity=1.0)
    failed = run_episode(heavy, ScriptedExpert(heavy), 0)
    assert not failed.success and (failed.failure_reason, failed.failure_step) == ("timeout", mw.MAX_EPISODE_STEPS - 1)
    env.close(), heavy.close()


@needs_metaworld
def test_the_documented_collect_command_saves_two_demos_with_the_task_and_period(tmp_path):
    from fiper.storage import EpisodeStore

    out = tmp_path / "demos.zarr"
    done = subprocess.run([sys.executable, "-m", "launch.collect", "--config-dir", "examples/metaworld_push/conf",
                           "env=metaworld_push", "expert=examples.metaworld_push.expert:ScriptedExpert", "n_episodes=2",
                           f"out={out}", "++progress=false"],
                          cwd=ROOT, capture_output=True, text=True, env={**os.environ, "MUJOCO_GL": "egl"}, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    demos = EpisodeStore.open(out)
    assert demos.attrs["task"] == "SawyerPushEnvV3" and demos.attrs["control_period_s"] == pytest.approx(0.0125)
    assert demos.meta("success").all() and sorted(demos.data_keys) == ["action", "obs"]
