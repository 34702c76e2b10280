"""launch.act's videos ask the env for act.video_size under whichever keyword its constructor takes."""

from __future__ import annotations


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


def test_act_videos_ask_an_env_taking_render_width_and_height_for_its_size(tmp_path, monkeypatch):
    """An env whose constructor takes render_width / render_height (panda-gym's signature) and refuses render_size and
    width / height renders the videos at act.video_size, not at its own default size."""
    from launch.act_videos import rendering_env

    (tmp_path / "sized_env.py").write_text(
        "import gymnasium as gym\nimport numpy as np\n\n"
        "class Sized(gym.Env):\n"
        "    observation_space = gym.spaces.Box(-1.0, 1.0, (2,))\n"
        "    action_space = gym.spaces.Box(-1.0, 1.0, (2,))\n"
        "    def __init__(self, render_mode=None, render_width=480, render_height=360):\n"
        "        self.render_mode, self.size = render_mode, (render_height, render_width)\n"
        "    def reset(self, seed=None, options=None):\n"
        "        super().reset(seed=seed)\n"
        "        return np.zeros(2, np.float32), {}\n"
        "    def step(self, action):\n"
        "        return np.zeros(2, np.float32), 0.0, False, False, {}\n"
        "    def render(self):\n"
        "        return np.zeros((*self.size, 3), np.uint8)\n\n"
        "def make(**kwargs):\n"
        "    return Sized(**kwargs)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    env = rendering_env({"factory": "sized_env:make", "kwargs": {}}, {}, "none", 0.0, 64)
    env.reset(seed=0)
    assert env.render().shape == (64, 64, 3)


def test_act_videos_ask_an_env_taking_visualization_width_and_height_for_its_size(tmp_path, monkeypatch):
    """lerobot's gym-pusht sizes its render() frames by visualization_width / visualization_height (680 px by default)
    and refuses the other keywords; the videos are rendered at act.video_size, not 680 px."""
    from launch.act_videos import rendering_env

    (tmp_path / "lerobot_like.py").write_text(
        "import gymnasium as gym\nimport numpy as np\n\n"
        "class Sized(gym.Env):\n"
        "    observation_space = gym.spaces.Box(-1.0, 1.0, (2,))\n"
        "    action_space = gym.spaces.Box(-1.0, 1.0, (2,))\n"
        "    def __init__(self, render_mode='rgb_array', visualization_width=680, visualization_height=680):\n"
        "        self.render_mode, self.size = render_mode, (visualization_height, visualization_width)\n"
        "    def reset(self, seed=None, options=None):\n"
        "        super().reset(seed=seed)\n"
        "        return np.zeros(2, np.float32), {}\n"
        "    def step(self, action):\n"
        "        return np.zeros(2, np.float32), 0.0, False, False, {}\n"
        "    def render(self):\n"
        "        return np.zeros((*self.size, 3), np.uint8)\n\n"
        "def make(**kwargs):\n"
        "    return Sized(**kwargs)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    env = rendering_env({"factory": "lerobot_like:make", "kwargs": {}}, {}, "none", 0.0, 96)
    env.reset(seed=0)
    assert env.render().shape == (96, 96, 3)
