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


SHIMMY_SIZED_ENV = SIZED_ENV.replace("{w}=480, {h}=360):\n        self.render_mode, self.size = render_mode, ({h}, {w})",
                                     "render_kwargs=None):\n        size = render_kwargs or {{'width': 320, 'height': 240}}\n"
                                     "        self.render_mode, self.size = render_mode, (size['height'], size['width'])")


def test_act_videos_ask_a_shimmy_dm_control_env_for_its_size_in_render_kwargs(tmp_path, monkeypatch):
    """shimmy's dm_control envs take the frame size as render_kwargs={'width', 'height'} (gymnasium:make with a
    dm_control/... id passes it on): the videos are rendered at act.video_size, not at dm_control's 320 x 240."""
    from launch.act_videos import rendering_env

    (tmp_path / "shimmy_sized.py").write_text(SHIMMY_SIZED_ENV.format())
    monkeypatch.syspath_prepend(str(tmp_path))
    env = rendering_env({"factory": "shimmy_sized:make", "kwargs": {}}, {}, "none", 0.0, 64)
    env.reset(seed=0)
    assert env.render().shape == (64, 64, 3)


CHECK_WITHOUT_ENCODER = (
    "import sys\n"
    "sys.modules['imageio_ffmpeg'] = sys.modules['av'] = None  # imageio installed alone, as gymnasium and shimmy install it\n"
    "from launch.act_videos import check_rendering\n"
    "try:\n"
    "    check_rendering({'factory': 'sized_width:make', 'kwargs': {}}, {}, 64, ' (nothing has run yet)')\n"
    "except ValueError as err:\n"
    "    print('refused:', err)\n"
    "else:\n"
    "    print('passed')\n")


def test_act_videos_without_an_mp4_encoder_are_refused_before_the_sweep(tmp_path):
    """imageio without imageio-ffmpeg renders frames but writes no mp4: the check before the sweep says so and names the
    extra and videos=false, instead of the sweep failing with imageio's OSError once everything else has run."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    (tmp_path / "sized_width.py").write_text(SIZED_ENV.format(w="width", h="height"))
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(tmp_path)])}
    done = subprocess.run([sys.executable, "-c", CHECK_WITHOUT_ENCODER], cwd=root, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "refused: videos=true: imageio cannot write a .mp4 video here" in done.stdout, done.stdout
    assert "pip install 'fiper[image]'" in done.stdout and "or set videos=false (nothing has run yet)" in done.stdout
