"""gymnasium-robotics' FetchPickAndPlace-v4 example: the parts that run without gymnasium-robotics (which needs
mujoco < 3.12, so the suite cannot build the env): the factory's message, the expert's phases on constructed
observations, and the pipeline config composing with its cells, factories and outcome-sweep settings."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from example_pipeline import compose_example, shift_factories

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # the example is imported as examples.gym_fetch, as from the repository root

from examples.gym_fetch import envs as fetch  # noqa: E402
from examples.gym_fetch.expert import PickExpert  # noqa: E402


@pytest.mark.skipif(importlib.util.find_spec("gymnasium_robotics") is not None, reason="gymnasium-robotics is installed")
def test_the_factory_without_gymnasium_robotics_names_the_install():
    with pytest.raises(ModuleNotFoundError, match=r"FetchPickAndPlace-v4 needs gymnasium-robotics: pip install "
                                                  r"gymnasium-robotics 'mujoco<3.12'"):
        fetch.make_fetch()


def _obs(grip, obj, goal=(1.4, 0.8, 0.6)):
    state = np.zeros(25)
    state[0:3], state[3:6] = grip, obj
    return {"observation": state, "achieved_goal": np.asarray(obj, float), "desired_goal": np.asarray(goal, float)}


def test_the_expert_goes_above_the_object_down_closes_and_carries():
    expert = PickExpert(env=None)
    expert.reset(0)
    obj = np.array([1.3, 0.7, 0.425])
    far = expert.act(_obs(obj + [0.1, 0.0, 0.2], obj), {})
    assert expert.strategy == "above" and np.allclose(far, [-1.0, 0.0, -1.0, 1.0])  # towards 5 cm above it, clipped
    expert.act(_obs(obj + [0.005, 0.0, 0.05], obj), {})
    assert expert.strategy == "down"
    closing = [expert.act(_obs(obj + [0.0, 0.0, 0.005], obj), {}) for _ in range(4)]
    assert [a[3] for a in closing] == [-1.0] * 4 and expert.strategy == "carry"
    carry = expert.act(_obs(obj, obj, goal=obj + [0.0, 0.0, 0.02]), {})
    assert np.allclose(carry, [0.0, 0.0, 0.2, -1.0])
    expert.reset(1)
    assert expert.strategy == "above"


def test_the_pipeline_config_composes_with_its_cells_factories_and_outcome_sweep():
    cfg = compose_example("gym_fetch", "pipeline_fetch")
    assert cfg.train.checkpoint is None and cfg.collect.expert == "examples.gym_fetch.expert:PickExpert"
    assert shift_factories(cfg, fetch) == ["obs_noise", "weak_arm", "wide_start", "heavy"]
    assert list(cfg.act.responses) == ["hold", "retreat", "return_retry"] and "context.action_mode=velocity" in cfg.act.overrides
    for factory in (fetch.obs_noise, fetch.weak_arm, fetch.wide_start, fetch.heavy):  # checked before the env is built
        with pytest.raises(ValueError, match=rf"{factory.__name__}: severity must be a number in \[0, 1\], got 2.0"):
            factory(severity=2.0)
