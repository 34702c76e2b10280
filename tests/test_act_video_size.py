"""launch.act's videos ask the env for act.video_size under whichever keyword its constructor takes."""

from __future__ import annotations

import pytest


def test_act_videos_ask_a_gymnasium_mujoco_env_for_its_size_by_width_and_height(tmp_path, monkeypatch):
    """A factory forwarding **kwargs to gym.make refuses render_size; the video env is made with width and height instead."""
    from launch.act_videos import rendering_env

    (tmp_path / "forwarding_pendulum.py").write_text("import gymnasium as gym\n\ndef make(**kwargs):\n"
                                                     "    return gym.make('InvertedPendulum-v5', **kwargs)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    env = rendering_env({"factory": "forwarding_pendulum:make", "kwargs": {}}, {}, "none", 0.0, 48)
    try:
        env.reset(seed=0)
        assert env.render().shape == (48, 48, 3)
    finally:
        env.close()


SIZED_ENV = (
    "import gymnasium as gym\nimport numpy as np\n\n"
    "class Sized(gym.Env):\n"
    "    observation_space = gym.spaces.Box(-1.0, 1.0, (2,))\n"
    "    action_space = gym.spaces.Box(-1.0, 1.0, (2,))\n"
    "    def __init__(self, render_mode=None, {w}=480, {h}=360):\n"
    "        self.render_mode, self.size = render_mode, ({h}, {w})\n"
    "    def reset(self, seed=None, options=None):\n"
    "        super().reset(seed=seed)\n"
    "        return np.zeros(2, np.float32), {{}}\n"
    "    def step(self, action):\n"
    "        return np.zeros(2, np.float32), 0.0, False, False, {{}}\n"
    "    def render(self):\n"
    "        return np.zeros((*self.size, 3), np.uint8)\n\n"
    "def make(**kwargs):\n"
    "    return Sized(**kwargs)\n")


@pytest.mark.parametrize("width, height", [("render_width", "render_height"),  # panda-gym's signature
                                           ("visualization_width", "visualization_height")])  # lerobot's gym-pusht (680 px)
def test_act_videos_ask_an_env_for_its_size_by_the_keywords_its_constructor_takes(tmp_path, monkeypatch, width, height):
    """An env that refuses render_size and width / height but takes another pair of size keywords renders the videos at
    act.video_size, not at its own default size."""
    from launch.act_videos import rendering_env

    module = f"sized_{width}"
    (tmp_path / f"{module}.py").write_text(SIZED_ENV.format(w=width, h=height))
    monkeypatch.syspath_prepend(str(tmp_path))
    env = rendering_env({"factory": f"{module}:make", "kwargs": {}}, {}, "none", 0.0, 64)
    env.reset(seed=0)
    assert env.render().shape == (64, 64, 3)
