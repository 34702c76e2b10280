"""The outcome sweep pairs runs by seed: an env whose reset(seed) does not fix the episode is refused before it runs."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import envs
from fiper.collection import SetupError
from fiper.control.sweep import check_seeded_resets


class UnseededGoal(gym.Wrapper):
    """Draws a goal at every reset from a generator the seed never reaches (as Meta-World's gym.make picks a task)."""

    def __init__(self, env, reseed: bool):
        super().__init__(env)
        self.reseed, self.rng = reseed, np.random.default_rng()

    def reset(self, *, seed=None, options=None):
        if self.reseed and seed is not None:
            self.rng = np.random.default_rng(seed)
        obs, info = self.env.reset(seed=seed, options=options)
        return {"obs": obs, "goal": self.rng.uniform(-1, 1, 2)}, info


def builder(reseed_shifted: bool):
    return lambda shift, severity: UnseededGoal(gym.make("Pendulum-v1"), reseed=shift == "none" or reseed_shifted)


def test_an_env_whose_seed_does_not_fix_the_episode_is_refused_naming_the_cell_and_the_fix():
    cells = [("none", 0.0), ("goal", 1.0)]
    check_seeded_resets(builder(True), cells, "launch.act")  # every random choice follows the seed: passes
    with pytest.raises(SetupError, match=r"launch.act: the env of cell \(goal, 1\) started a different episode from "
                                         r"reset\(seed=0\) the second time .*observation 'goal' differed.*act=null"):
        check_seeded_resets(builder(False), cells, "launch.act")


@pytest.mark.parametrize("task", ["pick_place", "push_t"])
def test_the_shipped_tasks_start_the_same_episode_from_a_seed(task):
    cells = [("none", 0.0), ("obstacle", 1.0), ("init_pose", 1.0), ("obs_noise", 0.5)]
    check_seeded_resets(lambda shift, sev: envs.make_env(task, shifts=[] if shift == "none" else [(shift, sev)]), cells, task)
