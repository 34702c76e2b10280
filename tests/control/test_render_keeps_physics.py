"""A video's re-run must replay the recorded episode: rendering leaves a MuJoCo env's simulation as it found it."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401  (before mujoco: it picks the headless GL backend the later rendering tests need)
import mujoco  # noqa: E402
from fiper.control.video import rendered_frame

XML = """<mujoco><option timestep="0.01"/><worldbody><body name="cart"><joint name="x" type="slide" axis="1 0 0"/>
<geom type="box" size="0.05 0.05 0.05" mass="1"/></body></worldbody><actuator><motor joint="x"/></actuator></mujoco>"""


class ForwardOnRender(gym.Env):
    """Steers the cart by its body position read between steps, and runs mj_forward in render(), as Fetch does."""

    metadata = {"render_modes": ["rgb_array"]}
    observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float64)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    render_mode = "rgb_array"

    def __init__(self):
        self.model = mujoco.MjModel.from_xml_string(XML)
        self.data = mujoco.MjData(self.model)

    def reset(self, *, seed=None, options=None):
        mujoco.mj_resetData(self.model, self.data)
        self.data.qvel[0] = 1.0
        return self.data.qpos.copy(), {}

    def step(self, action):
        self.data.ctrl[0] = float(action[0]) - 5.0 * self.data.xpos[1, 0]  # a derived position, as of the last forward pass
        for _ in range(5):
            mujoco.mj_step(self.model, self.data)
        return np.append(self.data.qpos, self.data.qvel), 0.0, False, False, {}

    def render(self):
        mujoco.mj_forward(self.model, self.data)
        return np.zeros((8, 8, 3), np.uint8)


def _observations(render) -> np.ndarray:
    env = ForwardOnRender()
    env.reset(seed=0)
    out = []
    for t in range(20):
        out.append(env.step(np.array([np.sin(t)], np.float32))[0])
        render(env)
    return np.array(out)


def test_a_rendered_run_replays_the_unrendered_one_exactly():
    plain = _observations(lambda env: None)
    assert np.array_equal(_observations(rendered_frame), plain)
    assert np.abs(_observations(lambda env: env.render()) - plain).max() > 1e-3  # a bare render() moves the next step


class TwoCameras(gym.Env):
    """lerobot's gym-hil: render() returns one frame per camera, a list (front, wrist)."""

    render_mode = "rgb_array"
    observation_space = gym.spaces.Box(-1.0, 1.0, (2,))
    action_space = gym.spaces.Box(-1.0, 1.0, (2,))

    def __init__(self, frames):
        self.frames = frames

    def render(self):
        return self.frames


def test_a_list_of_camera_frames_is_tiled_side_by_side_and_anything_else_is_named():
    front, wrist = np.full((4, 5, 3), 1, np.uint8), np.full((4, 3, 3), 2, np.uint8)
    tiled = rendered_frame(TwoCameras([front, wrist]))
    assert tiled.shape == (4, 8, 3) and (tiled[:, :5] == 1).all() and (tiled[:, 5:] == 2).all()
    with pytest.raises(ValueError, match=r"returned list of \(4, 5, 3\), \(6, 3, 3\), not an \(H, W, 3\) array or a list of "
                                         r"frames of one height"):
        rendered_frame(TwoCameras([front, np.zeros((6, 3, 3), np.uint8)]))
    with pytest.raises(ValueError, match=r"returned NoneType, not an \(H, W, 3\) array"):
        rendered_frame(TwoCameras(None))
