"""launch.collect overwrite=true replaces a store only once the new one is complete: a run that fails on the way
leaves the store it was to replace as it was."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

CONF = str(Path(__file__).resolve().parents[1] / "launch" / "conf")

LINE = textwrap.dedent('''
    import gymnasium as gym
    import numpy as np

    class Line(gym.Env):
        observation_space = gym.spaces.Box(-10, 10, (2,), np.float32)
        action_space = gym.spaces.Box(-1, 1, (1,), np.float32)
        dt = 0.1

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            self.t = 0
            return np.zeros(2, np.float32), {}

        def step(self, action):
            self.t += 1
            return np.full(2, self.t, np.float32), 0.0, self.t >= 4, False, {"success": True}

    def make():
        return Line()

    class Expert:
        def __init__(self, env):
            pass

        def reset(self, seed=None):
            if seed is not None and seed >= 102:
                raise RuntimeError("the operator let go of the device")

        def act(self, obs, info):
            return np.full(1, 0.5, np.float32)
''')


def _collect(tmp_path, *overrides):
    from launch.collect import run

    base = ["env.factory=line_env:make", "env.name=null", "env.obs_mode=null", "expert=line_env:Expert", "progress=false",
            f"out={tmp_path / 'demos.zarr'}"]
    with initialize_config_dir(config_dir=CONF, version_base=None):
        return run(compose("collect", [*base, *overrides]))


def test_a_failed_overwrite_leaves_the_old_store_and_a_complete_one_replaces_it(tmp_path, monkeypatch):
    from fiper.storage import EpisodeStore

    (tmp_path / "line_env.py").write_text(LINE)
    monkeypatch.syspath_prepend(str(tmp_path))
    _collect(tmp_path, "n_episodes=3", "seed=0")
    before = EpisodeStore.open(tmp_path / "demos.zarr")
    actions, store_id = before.read_data("action").copy(), before.attrs["store_id"]
    with pytest.raises(RuntimeError, match="let go"):
        _collect(tmp_path, "n_episodes=3", "seed=100", "overwrite=true")  # fails at its third episode
    kept = EpisodeStore.open(tmp_path / "demos.zarr")
    assert kept.n_episodes == 3 and kept.attrs["store_id"] == store_id and kept.meta("seed").tolist() == [0, 1, 2]
    np.testing.assert_array_equal(kept.read_data("action"), actions)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".demos")] == []  # no partial copy left beside it
    _collect(tmp_path, "n_episodes=2", "seed=100", "overwrite=true")
    new = EpisodeStore.open(tmp_path / "demos.zarr")
    assert new.meta("seed").tolist() == [100, 101] and new.attrs["collection"]["saved"] == 2
