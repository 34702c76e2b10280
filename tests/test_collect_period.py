"""launch.collect on an env that declares no control period: the demos are saved, and the note says now what the
rollouts will stop on, with any period an env the user's env holds declares."""

from __future__ import annotations

import textwrap
from pathlib import Path

from hydra import compose, initialize_config_dir

CONF = str(Path(__file__).resolve().parents[1] / "launch" / "conf")

MAZE_LIKE = textwrap.dedent('''
    """A maze that steps an inner physics env once per step and, like gymnasium-robotics' PointMaze, declares no dt."""
    import gymnasium as gym
    import numpy as np

    class Point:
        dt = 0.01

    class Maze(gym.Env):
        observation_space = gym.spaces.Box(-10, 10, (2,), np.float32)
        action_space = gym.spaces.Box(-1, 1, (1,), np.float32)

        def __init__(self):
            self.point_env = Point()

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            self.t = 0
            return np.zeros(2, np.float32), {}

        def step(self, action):
            self.t += 1
            return np.full(2, self.t, np.float32), 0.0, False, self.t >= 5, {"success": self.t >= 5}

    def make():
        return gym.wrappers.TimeLimit(Maze(), 5)

    class Expert:
        def __init__(self, env):
            pass

        def reset(self, seed=None):
            pass

        def act(self, obs, info):
            return np.ones(1, np.float32)
''')


def test_demos_of_an_env_without_a_period_are_saved_with_a_note_naming_the_fix_and_the_inner_period(tmp_path, monkeypatch, capsys):
    from fiper.storage import EpisodeStore
    from launch.collect import run

    (tmp_path / "maze_like_env.py").write_text(MAZE_LIKE)
    monkeypatch.syspath_prepend(str(tmp_path))
    overrides = ["env.factory=maze_like_env:make", "env.name=null", "env.obs_mode=null", "expert=maze_like_env:Expert",
                 "n_episodes=2", "progress=false", f"out={tmp_path / 'demos.zarr'}"]
    with initialize_config_dir(config_dir=CONF, version_base=None):
        run(compose("collect", overrides))
        printed = capsys.readouterr().out
        assert "note: the demos are saved without a control period; launch.stress and launch.act will stop" in printed
        assert "add `control_period_s: <seconds per env step>` to the env group" in printed
        assert "Maze.point_env: Point.dt = 0.01 s is declared by an object the env holds" in printed
        store = EpisodeStore.open(tmp_path / "demos.zarr")
        assert store.n_episodes == 2 and "control_period_s" not in store.attrs
        run(compose("collect", [*overrides[:-1], f"out={tmp_path / 'stated.zarr'}", "++env.control_period_s=0.01"]))
        assert "note: the demos are saved without" not in capsys.readouterr().out
        assert EpisodeStore.open(tmp_path / "stated.zarr").attrs["control_period_s"] == 0.01
