"""lerobot's gym-aloha (AlohaTransferCube-v0: two ViperX arms on dm_control, absolute joint targets, 0.02 s steps), an
env written without fiper, through the bring-your-own-env path: the example's factories (task name, control period,
action ranges, observations), its shifts, the scripted handover, the drop label, and launch.collect by its documented
command. gym-aloha needs mujoco<3.9 and dm-control<1.1, so it runs in an environment of its own (README.md)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gym_aloha", reason="lerobot's ALOHA env: pip install gym-aloha (needs mujoco<3.9, examples/gym_aloha/README.md)")

from fiper.collection import collect, run_episode  # noqa: E402
from fiper.control.period import control_period_s  # noqa: E402
from fiper.env_factory import env_task_name  # noqa: E402
from fiper.storage import EpisodeStore  # noqa: E402
from example_pipeline import compose_example, shift_factories

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # the example is imported as examples.gym_aloha, as from the repository root

from examples.gym_aloha import envs as aloha  # noqa: E402
from examples.gym_aloha.expert import TransferExpert  # noqa: E402

SHIFTS = (aloha.cube_far, aloha.slippery_cube, aloha.obs_noise)


def test_the_factory_names_the_task_declares_its_period_and_the_actuators_ranges():
    env = aloha.make_aloha()
    assert env_task_name(env) == "gym_aloha/AlohaTransferCube-v0" and env.spec.max_episode_steps == 300
    assert control_period_s(env) == pytest.approx(0.02)  # dm_control's control_timestep(): ten 2 ms physics steps
    obs, _ = env.reset(seed=3)
    assert obs["agent_pos"].shape == (14,) and obs["cube"].shape == (7,) and env.observation_space.contains(obs)
    low, high = env.action_space.low, env.action_space.high
    assert low[0] == pytest.approx(-3.14158) and high[7] == pytest.approx(3.14158)  # waists: gym-aloha declares [-1, 1]
    assert low[[6, 13]].tolist() == [0.0, 0.0] and high[[6, 13]].tolist() == [1.0, 1.0]  # the fingers' normalised opening
    with pytest.raises(ValueError, match=r"obs_type='pixels': this example runs 'state'"):
        aloha.make_aloha(obs_type="pixels")


def test_the_camera_observation_is_rendered_at_the_declared_size():
    env = aloha.make_aloha(obs_type="pixels_agent_pos", observation_width=48, observation_height=32)
    obs, _ = env.reset(seed=0)
    assert obs["pixels"]["top"].shape == (32, 48, 3) and obs["pixels"]["top"].dtype == np.uint8  # gym-aloha: 480 x 640
    assert env.observation_space.contains(obs) and obs["pixels"]["top"].std() > 5  # a scene, not a blank frame
    noisy = aloha.obs_noise(severity=1.0, obs_type="pixels_agent_pos", observation_width=48, observation_height=32)
    shifted, _ = noisy.reset(seed=0)
    assert np.abs(shifted["pixels"]["top"].astype(float) - obs["pixels"]["top"]).mean() > 5
    np.testing.assert_array_equal(shifted["agent_pos"], obs["agent_pos"])


def test_the_shifts_are_the_nominal_task_at_severity_zero_and_refuse_a_bad_severity():
    nominal, _ = aloha.make_aloha().reset(seed=5)
    for shift in SHIFTS:
        np.testing.assert_array_equal(shift(severity=0.0).reset(seed=5)[0]["cube"], nominal["cube"])
        with pytest.raises(ValueError, match=rf"{shift.__name__}: severity must be a number in \[0, 1\], got 1.5"):
            shift(severity=1.5)
    starts = np.array([aloha.cube_far(severity=1.0).reset(seed=s)[0]["cube"][:2] for s in range(12)])
    outside = (starts[:, 0] > 0.2) | (starts[:, 0] < 0.0) | (starts[:, 1] > 0.6) | (starts[:, 1] < 0.4)
    assert outside.all() and (np.abs(starts - [0.1, 0.5]).max(axis=1) < 0.1 + 0.1 + 1e-6).all()
    env = aloha.slippery_cube(severity=1.0)
    model = env.unwrapped._env.physics.model
    assert model.geom_friction[model.name2id("red_box", "geom"), 0] == pytest.approx(0.2)
    noisy = aloha.obs_noise(severity=1.0).reset(seed=5)[0]
    assert 0.002 < np.std(noisy["cube"] - nominal["cube"]) < 0.03
    np.testing.assert_array_equal(noisy["agent_pos"], nominal["agent_pos"])


def test_the_expert_hands_the_cube_over_and_a_dropped_cube_is_a_failure_at_its_step():
    env = aloha.make_aloha()
    expert = TransferExpert(env)
    episodes = [run_episode(env, expert, seed) for seed in range(3)]
    assert all(e.success and e.length < 300 and e.failure_step == -1 for e in episodes)  # README: 50 of 50 seeds

    class LetGo(TransferExpert):  # opens the right fingers once the cube is up
        def act(self, obs, info):
            action = super().act(obs, info)
            if obs["cube"][2] > 0.12:
                action[13] = 1.0
            return action

    dropped = run_episode(env, LetGo(env), 0)
    assert (dropped.success, dropped.failure_reason) == (False, "dropped") and 100 < dropped.failure_step == dropped.length - 1
    lift = aloha.make_aloha(success="lift")  # the looser task: the right arm's lift is the success, and ends the episode
    lifted = run_episode(lift, TransferExpert(lift), 0)
    assert lifted.success and 100 < lifted.length < episodes[0].length
    with pytest.raises(ValueError, match=r"success='hold': 'transfer' or 'lift'"):
        aloha.make_aloha(success="hold")
    with pytest.raises(ValueError, match="TransferExpert drives gym-aloha's bimanual ViperX"):
        import gymnasium as gym

        TransferExpert(gym.make("Pendulum-v1"))


def test_the_camera_observation_is_stored_under_its_dotted_key(tmp_path):
    env = aloha.make_aloha(obs_type="pixels_agent_pos")
    store = EpisodeStore.create(tmp_path / "pixels.zarr")
    summary = collect(env, TransferExpert(env), store, 1, progress=False)
    assert summary.saved == 1 and summary.clipped_steps == 0
    episode = store.episode(0, ["pixels.top", "agent_pos", "action"])
    assert episode["pixels.top"].shape[1:] == (64, 64, 3) and episode["action"].shape[1] == 14


def test_launch_collect_runs_the_documented_command(tmp_path):
    out = tmp_path / "demos.zarr"
    command = [sys.executable, "-m", "launch.collect", "--config-dir", str(ROOT / "examples" / "gym_aloha" / "conf"), "env=aloha",
               "expert=examples.gym_aloha.expert:TransferExpert", "n_episodes=2", f"out={out}", "progress=false"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "saved 2 episodes from 2 attempts (2 successful)" in done.stdout + done.stderr
    store = EpisodeStore.open(out)
    assert store.attrs["task"] == "gym_aloha/AlohaTransferCube-v0" and store.attrs["control_period_s"] == pytest.approx(0.02)
    assert store.attrs["collection"]["clipped_steps"] == 0


def test_the_pipeline_config_composes_with_its_cells_factories_lift_success_and_outcome_sweep():
    
    cfg = compose_example("gym_aloha", "pipeline_aloha")
    assert cfg.train.checkpoint is None and cfg.collect.expert == "examples.gym_aloha.expert:TransferExpert"
    assert list(cfg.env_overrides) == ["+env.kwargs.success=lift"]
    assert shift_factories(cfg, aloha) == ["cube_far", "slippery_cube", "obs_noise"]
    assert "context.gripper_dims=[6,13]" in cfg.act.overrides
