"""Parts of one's own named by import path ('file.py:name', 'module:name') in configs, and the errors that name a
wrong name, file, signature or object before anything runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fiper.control.failsafe import FailSafeError, fault_owner
from fiper.interventions import (FallbackContext, GradedResponse, HandOver, SafeController, load_reward, make_fallback,
                                 make_reward, response_from_config)
from user_parts import PARTS as USER_PARTS

PARTS = USER_PARTS + '''

class NoAct:
    name = "no_act"

    def start(self, context):
        pass


def make_left_of(x_max):
    return lambda traj: -torch.relu(traj[..., 0] - x_max).sum(-1)


def three(a, b, c):
    return a


def not_a_response():
    return object()
'''


@pytest.fixture()
def parts(tmp_path):
    path = tmp_path / "my_parts.py"
    path.write_text(PARTS)
    return str(path)


def test_a_fallback_reward_and_response_of_ones_own_are_built_from_their_file_path(parts):
    ctx = FallbackContext(action_dim=2, position_dims=[0, 1])
    ctx.record(np.array([0.3, -0.2]))
    nudge = make_fallback(f"{parts}:Nudge", dx=0.05)
    nudge.start(ctx)
    assert np.allclose(nudge.act({}, ctx), [0.35, -0.2])
    traj = torch.tensor([[[0.5, 0.0, 0.0], [-1.0, 0.0, 0.0]]])
    assert make_reward(f"{parts}:left_of")(traj).tolist() == [-0.5]  # a function: the reward itself
    assert make_reward(f"{parts}:make_left_of", x_max=0.25)(traj).tolist() == [-0.25]  # with settings: a factory
    response = response_from_config({"kind": f"{parts}:steer_then_nudge", "dx": 0.1, "n": 3, "particles": 4})
    assert isinstance(response, GradedResponse) and response.max_steer_decisions == 3 and response.fallback.dx == 0.1
    graded = response_from_config({"steering": {"reward": {"name": f"{parts}:left_of"}, "position_dims": [0, 1]},
                                   "fallback": {"name": f"{parts}:Nudge", "dx": 0.2}})
    assert graded.fallback_label == "fallback:nudge" and graded.steering.rewards[0](traj).tolist() == [-0.5]


@pytest.mark.parametrize("config, words", [
    ({"fallback": {"name": "hovr"}}, r"unknown fallback 'hovr'.*import path 'path/to/file.py:name'.*register_fallback"),
    ({"fallback": {"name": "retreat", "stepz": 3}}, r"fallback 'retreat' cannot be called with \(stepz\).*\(steps"),
    ({"fallback": {"name": "{parts}x:Nudge"}}, r"cannot be loaded: FileNotFoundError.*no such file"),
    ({"fallback": {"name": "{parts}:Nudg"}}, r"cannot be loaded: AttributeError.*has no attribute 'Nudg'.*'Nudge'"),
    ({"fallback": {"name": "{parts}:Nudge", "dy": 1}}, r"fallback '.*:Nudge' cannot be called with \(dy\).*\(dx=0.0\)"),
    ({"fallback": {"name": "{parts}:NoAct"}}, r"NoAct has no method act\(obs, context\)"),
    ({"fallback": {"name": "{parts}:left_of"}}, r"cannot be called with \(no arguments\).*'traj'"),
    ({"fallback": {"name": "hold"}, "steering": {"reward": {"name": "{parts}:three"}}},
     r"reward 'three' cannot be called with \(<value>\).*\(a, b, c\).*one trajectory tensor"),
    ({"kind": "{parts}:not_a_response"}, r"response kind '.*' is a object, which lacks \['reset'.*GradedResponse"),
    ({"kind": "no_such_module:make"}, r"response 'no_such_module:make' cannot be loaded: ModuleNotFoundError"),
])
def test_a_wrong_name_file_signature_or_object_is_a_value_error_naming_it(parts, config, words):
    def filled(value):
        if isinstance(value, dict):
            return {k: filled(v) for k, v in value.items()}
        return value.replace("{parts}", parts) if isinstance(value, str) else value
    with pytest.raises(ValueError, match=words):
        response_from_config(filled(config))


def test_callables_with_the_wrong_signature_are_refused_when_built(parts):
    with pytest.raises(ValueError, match=r"hand-over callback .* cannot be called with \(<value>, <value>\).*\(obs, context\)"):
        HandOver(lambda obs: None)
    with pytest.raises(ValueError, match=r"on_start .* cannot be called with \(<value>\).*\(context\)"):
        HandOver(lambda obs, context: None, on_start=lambda: None)
    with pytest.raises(ValueError, match=r"safe controller .* cannot be called with \(<value>\).*\(obs\)"):
        SafeController(lambda obs, context: np.zeros(2))
    with pytest.raises(ValueError, match=r"reward '.*:three' cannot be called with \(<value>\)"):
        load_reward(f"{parts}:three")
    with pytest.raises(ValueError, match=r"reward factory '.*:make_left_of' cannot be called with \(x_min\)"):
        load_reward(f"{parts}:make_left_of", x_min=0.1)
    with pytest.raises(ValueError, match=r"object has no method start\(context\)"):
        GradedResponse(fallback=object())


def test_a_fallback_fault_names_the_fallback_as_what_to_fix():
    assert fault_owner(FailSafeError("no safe action", source="fallback")) == "the fallback"


def test_a_reward_file_runs_as_a_module_of_its_own_at_every_load(tmp_path, monkeypatch):
    import torch

    from fiper.interventions import load_reward

    (tmp_path / "counting.py").write_text("CALLS = []\ndef r(traj):\n    CALLS.append(1)\n    return traj[:, -1, 0]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    first, second = load_reward(f"{tmp_path}/counting.py:r"), load_reward(f"{tmp_path}/counting.py:r")
    import counting

    first(torch.zeros(2, 4, 3))
    first(torch.zeros(2, 4, 3))
    second(torch.zeros(2, 4, 3))
    assert counting.CALLS == []  # not the imported module's state
    assert first.program.__globals__["CALLS"] == [1, 1] and second.program.__globals__["CALLS"] == [1]


def test_a_reward_named_by_its_import_path_in_a_config_is_called_by_that_path(tmp_path):
    from fiper.interventions import response_from_config

    (tmp_path / "mine.py").write_text("def left_of(traj):\n    return -traj[:, -1, 0]\n\ndef make(x=0.0):\n    return left_of\n")
    for reward in ({"name": f"{tmp_path}/mine.py:left_of"}, {"name": f"{tmp_path}/mine.py:make", "x": 1.0}):
        steering = response_from_config({"steering": {"reward": reward}, "fallback": {"name": "hold"}}).steering
        assert steering.rewards[0].name == reward["name"]
