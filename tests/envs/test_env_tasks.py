"""Registry, spaces, action validation and determinism of the fiper tasks."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from env_helpers import wiggle

import envs

SHAPES = {"push_t": (2, 4, 2), "sort": (2, 8, 2), "pick_place": (4, 7, 4)}  # agent_pos, object, action


def test_unknown_task_lists_known_ones():
    with pytest.raises(ValueError, match="unknown task 'pusht'") as err:
        envs.make_env("pusht")
    for name in ("push_t", "sort", "pick_place", "fiper/PushT-v0"):
        assert name in str(err.value)


def test_gym_ids_and_short_names_build_the_same_task(task):
    entry = envs.task_entry(task)
    env = gym.make(entry.gym_id)
    assert env.unwrapped.task_name == task
    assert envs.make_env(entry.gym_id).task_name == task
    obs, info = env.reset(seed=3)  # passes gymnasium's passive checker
    obs2, *_ = env.step(env.action_space.sample())
    assert set(obs) == {"agent_pos", "object", "obstacle"}


def test_lowdim_spaces_shapes_and_dtypes(task):
    env = envs.make_env(task)
    agent, obj, act = SHAPES[task]
    assert env.action_space.shape == (act,)
    obs, info = env.reset(seed=0)
    assert obs["agent_pos"].shape == (agent,) and obs["agent_pos"].dtype == np.float32
    assert obs["object"].shape == (obj,) and obs["object"].dtype == np.float32
    np.testing.assert_array_equal(obs["obstacle"], np.zeros(4, np.float32))  # no obstacle in the scene
    assert env.observation_space.contains(obs)
    obs, reward, terminated, truncated, info = env.step(env.unwrapped.hold_action())
    assert env.observation_space.contains(obs)
    assert isinstance(reward, float) and not terminated and not truncated
    assert {"success", "failure", "failure_step", "failure_reason", "seed", "shift", "severity", "step"} <= set(info)
    assert info["step"] == 1 and info["seed"] == 0 and info["shift"] == "none" and info["failure_step"] == -1


def test_bad_actions_fail_with_the_expected_shape(task):
    env = envs.make_env(task)
    env.reset(seed=0)
    n = env.action_space.shape[0]
    with pytest.raises(ValueError, match=rf"must have shape \({n},\)"):
        env.step(np.zeros(n + 1))
    with pytest.raises(ValueError, match="non-finite"):
        env.step(np.full(n, np.nan))


def test_actions_are_clipped_to_the_workspace():
    env = envs.make_env("push_t", terminate_on_failure=False)
    env.reset(seed=0)
    for _ in range(15):
        obs, *_ = env.step(np.array([5.0, -5.0]))
    np.testing.assert_allclose(obs["agent_pos"], [0.28, -0.28], atol=0.01)


def test_step_before_reset_and_bad_arguments():
    env = envs.make_env("sort")
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(2))
    with pytest.raises(ValueError, match="obs_mode"):
        envs.make_env("sort", obs_mode="pixels")
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(seed=0, options={"level": 2})


def test_same_seed_gives_identical_trajectories(task):
    def trajectory(seed):
        env = envs.make_env(task)
        obs, _ = env.reset(seed=seed)
        out = [np.concatenate([obs["agent_pos"], obs["object"]])]
        for a in wiggle(env, 25):
            obs, *_ = env.step(a)
            out.append(np.concatenate([obs["agent_pos"], obs["object"]]))
        return np.stack(out)

    a, b, c = trajectory(7), trajectory(7), trajectory(8)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a[0] - c[0]).max() > 1e-3  # another seed starts elsewhere


def test_reset_without_seed_draws_reproducible_episode_seeds():
    env1, env2 = envs.make_env("pick_place"), envs.make_env("pick_place")
    env1.reset(seed=11)
    env2.reset(seed=11)
    s1 = [env1.reset()[1]["seed"] for _ in range(3)]
    s2 = [env2.reset()[1]["seed"] for _ in range(3)]
    assert s1 == s2 and len(set(s1)) == 3


def test_timing_and_description(task):
    env = envs.make_env(task)
    assert env.dt == pytest.approx(0.1)  # 10 Hz control
    d = env.describe()
    assert d["task"] == task and d["control_hz"] == 10 and d["n_substeps"] * d["timestep"] == pytest.approx(0.1)
    assert d["max_episode_steps"] == env.max_episode_steps > 0


def test_passes_gymnasiums_env_checker(task):
    import warnings

    from gymnasium.utils.env_checker import check_env

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any checker warning fails the test ...
        warnings.filterwarnings("ignore", message=".*symmetric and normalized space")  # ... but this: actions are metres
        check_env(envs.make_env(task), skip_render_check=True)


def test_lowdim_observation_reports_the_obstacle_and_images_leave_it_to_the_camera(task):
    env = envs.make_env(task, shifts=[("obstacle", 0.8)])
    obs, _ = env.reset(seed=5)
    (ob,) = env.scene_obstacles()
    np.testing.assert_allclose(obs["obstacle"], [1.0, ob["center"][0], ob["center"][1], ob["radius"]], rtol=1e-6)
    assert env.observation_space.contains(obs)
    obs2, *_ = env.step(env.hold_action())
    np.testing.assert_array_equal(obs2["obstacle"], obs["obstacle"])  # static for the episode
    other, _ = env.reset(seed=6)
    assert not np.allclose(other["obstacle"][1:3], obs["obstacle"][1:3])  # placed per seed
    image = envs.make_env(task, obs_mode="image", shifts=[("obstacle", 0.8)], image_size=32)
    assert "obstacle" not in image.reset(seed=5)[0]
    image.close()
    scene = envs.make_env(task, obs_mode="image", shifts=[("obstacle", 0.8)], image_size=32, scene_obs=True)
    seen, _ = scene.reset(seed=5)  # the image plus what a scene detector would report, for a scene-aware score
    np.testing.assert_array_equal(seen["obstacle"], obs["obstacle"])
    assert scene.observation_space.contains(seen) and seen["image"].shape == (32, 32, 3)
    scene.close()
    with pytest.raises(ValueError, match="scene_obs must be true or false"):
        envs.make_env(task, obs_mode="image", scene_obs="yes")
