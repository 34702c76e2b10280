"""The DeepMind Control Suite's reacher through shimmy's gymnasium bindings (``dm_control/reacher-easy-v0``), an env
written without fiper (dict observations, no termination, no success label), through the bring-your-own-env path: the
example's factory, expert and shift factories, what fiper reads from the env (task, control period, observation keys,
time limit, seeded episodes, rendering), and every stage of launch.pipeline by its documented command at a tiny size.
Skipped without dm_control and shimmy (pip install 'shimmy[dm-control]' dm-control)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from example_pipeline import run_example_pipeline
from hydra import compose, initialize_config_dir

pytest.importorskip("dm_control", reason="dm_control's tasks: pip install 'shimmy[dm-control]' dm-control")
pytest.importorskip("shimmy", reason="dm_control's tasks come to gymnasium through shimmy: pip install 'shimmy[dm-control]'")

from fiper.collection import run_episode  # noqa: E402
from fiper.control.period import control_period_s  # noqa: E402
from fiper.env_factory import declared_step_limit, env_task_name  # noqa: E402
from fiper.storage import EpisodeStore  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "launch" / "conf"
EXAMPLE_CONF = ROOT / "examples" / "dmc_reacher" / "conf"
sys.path.insert(0, str(ROOT))  # the example is imported as examples.dmc_reacher, as from the repository root

from examples.dmc_reacher import envs as reacher  # noqa: E402
from examples.dmc_reacher.expert import ReachExpert, brake_controller  # noqa: E402


def test_the_expert_reaches_and_severity_zero_is_the_nominal_task():
    env = reacher.make_reacher()
    episodes = [run_episode(env, ReachExpert(env), seed) for seed in range(20)]
    assert sum(e.success for e in episodes) >= 18  # 50 of 50 over seeds 0-49 (README)
    assert all(e.failure_step == -1 and e.failure_reason == "" for e in episodes if e.success)
    nominal = env.reset(seed=3)[0]
    for shift in (reacher.weak_motor, reacher.obs_noise):
        shifted = shift(severity=0.0).reset(seed=3)[0]
        assert all(np.array_equal(shifted[key], nominal[key]) for key in nominal)
    weak = reacher.weak_motor(severity=1.0)
    assert reacher.physics(weak).model.actuator_gear[0, 0] == pytest.approx(0.05 * 0.15)
    assert not np.array_equal(reacher.obs_noise(severity=1.0).reset(seed=3)[0]["to_target"], nominal["to_target"])
    with pytest.raises(ValueError, match=r"obs_noise: severity must be a number in \[0, 1\], got 2.0"):
        reacher.obs_noise(severity=2.0)
    assert brake_controller({"velocity": np.array([0.5, -0.1])}).tolist() == [-1.0, 0.2]


def test_fiper_reads_the_task_period_limit_and_keys_from_shimmys_env():
    """The task is shimmy's id; the period is shimmy's dt, dm_control's control timestep (a method fiper does not
    call); dm_control's own 1000-step limit counts as declared, and the factory's TimeLimit is shorter."""
    import shimmy

    gym.register_envs(shimmy)
    raw = gym.make("dm_control/reacher-easy-v0")
    assert env_task_name(raw) == "dm_control/reacher-easy-v0" and control_period_s(raw) == pytest.approx(0.02)
    assert raw.spec.max_episode_steps is None and declared_step_limit(raw) == 1000
    cheetah = gym.make("dm_control/cheetah-run-v0")  # 0.01 s: one physics step of 0.01 s per control step
    assert control_period_s(cheetah) == pytest.approx(0.01) and declared_step_limit(cheetah) == 1000
    env = reacher.make_reacher(max_episode_steps=40)
    assert declared_step_limit(env) == 40 and control_period_s(env) == pytest.approx(0.02)
    obs, _ = env.reset(seed=0)
    assert {key: value.shape for key, value in obs.items()} == {"position": (2,), "to_target": (2,), "velocity": (2,)}


def test_a_seed_fixes_the_episode_and_the_env_renders_for_the_videos():
    from fiper.control.seeded_resets import check_seeded_resets

    factories = {"none": reacher.make_reacher, "weak_motor": reacher.weak_motor, "obs_noise": reacher.obs_noise}
    check_seeded_resets(lambda shift, severity: factories[shift](severity=severity) if shift != "none" else reacher.make_reacher(),
                        [("none", 0.0), ("weak_motor", 1.0), ("obs_noise", 1.0)], "test", expert=ReachExpert)
    env = reacher.make_reacher(render_mode="rgb_array", width=64, height=48)
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (48, 64, 3) and frame.dtype == np.uint8 and frame.std() > 0
    from launch.act_videos import rendering_env  # gymnasium:make as the factory: shimmy's render_kwargs carry the size

    raw = rendering_env({"factory": "gymnasium:make", "kwargs": {"id": "shimmy:dm_control/reacher-easy-v0"}}, {}, "none", 0.0, 64)
    raw.reset(seed=0)
    assert raw.render().shape == (64, 64, 3)


def test_launch_collect_with_the_env_group_records_what_the_env_says(tmp_path):
    from launch.collect import run

    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        cfg = compose("collect", ["env.factory=examples.dmc_reacher.envs:make_reacher", "env.name=null", "env.obs_mode=null",
                                  "expert=examples.dmc_reacher.expert:ReachExpert", "n_episodes=3", f"out={tmp_path / 'demos.zarr'}",
                                  "progress=false"])
        summary = run(cfg)
    store = EpisodeStore.open(tmp_path / "demos.zarr")
    assert store.data_keys == ["action", "position", "to_target", "velocity"] and store.meta("success").all()
    assert store.attrs["task"] == "dm_control/reacher-easy-v0" and store.attrs["control_period_s"] == pytest.approx(0.02)
    assert summary.step_limit == 100 and "time limit" not in str(summary)


@pytest.mark.slow
def test_the_documented_pipeline_command_runs_every_stage(tmp_path):
    """python -m launch.pipeline --config-dir examples/dmc_reacher/conf --config-name pipeline_dmc_reacher, tiny."""
    run_dir = tmp_path / "run"
    videos = "true" if _can_write_mp4() else "false"
    done = run_example_pipeline("dmc_reacher", run_dir, cells="[[none,[0.0]],[weak_motor,[1.0]],[obs_noise,[1.0]]]",
                                demos=4, steps=30, seeds_per_cell=2, extra=("act.seeds_per_cell=1", f"act.videos={videos}"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    task = "dm_control/reacher-easy-v0"
    demos = EpisodeStore.open(run_dir / "demos.zarr")
    assert demos.attrs["task"] == task and demos.attrs["control_period_s"] == pytest.approx(0.02)
    policy = json.loads((run_dir / "policy" / "config.json").read_text())
    assert policy["obs_shapes"] == {"position": [2], "to_target": [2], "velocity": [2]} and policy["action_dim"] == 2
    stress = EpisodeStore.open(run_dir / "stress.zarr")
    assert sorted(set(stress.meta("shift").astype(str))) == ["none", "obs_noise", "weak_motor"]
    assert set(stress.meta("failure_reason").astype(str)) <= {"", "timeout"}  # dm_control says success only: failures time out
    metrics = json.loads((run_dir / "evaluation" / "metrics.json").read_text())
    assert list(metrics["tasks"]) == [task] and metrics["tasks"][task]["control_period_s"] == pytest.approx(0.02)
    assert (run_dir / "evaluation" / "monitor_dm_control_reacher-easy-v0.yaml").exists()
    outcome = json.loads((run_dir / "act" / "outcome.json").read_text())
    assert outcome["task"] == task and "brake" in outcome["overall"]


def _can_write_mp4() -> bool:
    from fiper.control.video import check_video_writer

    try:
        check_video_writer()
    except ValueError:
        return False
    return True
