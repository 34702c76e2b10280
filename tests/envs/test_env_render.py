"""Image observations and rendering (skipped without an offscreen GL backend)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
from env_helpers import needs_gl, wiggle

import envs


def test_image_observations_have_the_documented_layout(task):
    needs_gl()
    env = envs.make_env(task, obs_mode="image")
    obs, _ = env.reset(seed=0)
    assert set(obs) == {"agent_pos", "image"}
    assert obs["image"].shape == (96, 96, 3) and obs["image"].dtype == np.uint8
    assert env.observation_space.contains(obs)
    first = obs["image"]
    for a in wiggle(env, 5, amplitude=0.08):
        obs, *_ = env.step(a)
    assert env.observation_space.contains(obs)
    assert np.abs(obs["image"].astype(int) - first).max() > 30  # the agent moved in view
    assert 40 < first.mean() < 230  # neither black nor blown out


def test_render_mode_gives_video_frames():
    needs_gl()
    env = envs.make_env("sort", render_mode="rgb_array", render_size=128)
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (128, 128, 3) and frame.dtype == np.uint8
    assert envs.make_env("sort").render() is None


def test_visual_shifts_change_images_but_not_nominal_ones():
    needs_gl()
    images = {}
    for name, shifts in {"nominal": None, "again": [("camera", 0.0)], "camera": [("camera", 1.0)], "lighting": [("lighting", 1.0)],
                         "noise": [("obs_noise", 0.5)]}.items():
        env = envs.make_env("push_t", obs_mode="image", shifts=shifts)
        images[name] = env.reset(seed=1)[0]["image"].astype(int)
    np.testing.assert_array_equal(images["nominal"], images["again"])
    for name in ("camera", "lighting", "noise"):
        assert np.abs(images[name] - images["nominal"]).mean() > 3, name


def test_lowdim_never_touches_gl():
    """With rendering disabled entirely the low-dim env still runs; image mode fails clearly."""
    code = textwrap.dedent("""
        import numpy as np, envs
        env = envs.make_env("pick_place")
        env.reset(seed=0)
        for _ in range(3):
            env.step(env.hold_action())
        try:
            envs.make_env("pick_place", obs_mode="image").reset(seed=0)
        except RuntimeError as err:
            print("IMAGE-ERROR", err)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "MUJOCO_GL": "disable"}, cwd=os.path.dirname(os.path.dirname(envs.__file__)))
    assert result.returncode == 0, result.stderr
    assert "IMAGE-ERROR cannot render images" in result.stdout


def test_one_camera_follows_recompiled_models():
    needs_gl()
    env = envs.make_env("sort", obs_mode="image")
    nominal = env.reset(seed=1)[0]["image"]
    with_obstacle = env.reset(seed=1, options={"shifts": [("obstacle", 1.0)]})[0]["image"]
    again = env.reset(seed=1, options={"shifts": []})[0]["image"]
    assert np.abs(with_obstacle.astype(int) - nominal).max() > 50  # the dark cylinder is in view
    np.testing.assert_array_equal(again, nominal)
    env.close()
