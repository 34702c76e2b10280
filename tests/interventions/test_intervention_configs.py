"""Every launch/conf/response/*.yaml builds a working GradedResponse (parts named by registry name)."""

from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

import envs
from fiper.interventions import FallbackContext, GradedResponse, Steering, response_from_config

CONF = Path(__file__).resolve().parents[2] / "launch" / "conf" / "response"
USER_CODE = """
import numpy as np

def operator(obs, context):
    return None  # nobody has taken over yet: hold

def home(obs):
    return np.zeros(2)
"""


def fill(name, tmp_path):
    """Values for the fields a user must fill in (???)."""
    user = tmp_path / "user_code.py"
    user.write_text(USER_CODE)
    return {
        "hand_over.yaml": {"fallback": {"callback": f"{user}:operator"}},
        "controller.yaml": {"fallback": {"controller": f"{user}:home"}},
        "steer_user_reward.yaml": {"steering": {"reward": {"spec": "fiper.interventions.rewards:Reach",
                                                           "target": [0.5, 0.0]}}},
    }.get(name, {})


def test_the_config_group_is_complete():
    names = sorted(p.name for p in CONF.glob("*.yaml"))
    assert names == ["controller.yaml", "hand_over.yaml", "hold.yaml", "retreat.yaml", "return_retry.yaml",
                     "steer_keep_out.yaml", "steer_user_reward.yaml", "stop.yaml"]


@pytest.mark.parametrize("name", sorted(p.name for p in CONF.glob("*.yaml") if p.name != "return_retry.yaml"))
def test_intervention_config_builds(name, tmp_path):  # return_retry.yaml: tests/interventions/test_return_retry.py
    cfg = OmegaConf.merge(OmegaConf.load(CONF / name), fill(name, tmp_path))
    response = response_from_config(OmegaConf.to_container(cfg, resolve=True))
    assert isinstance(response, GradedResponse)
    label = response.step(True, 2.0)
    assert label in ("steer", f"fallback:{response.fallback.name}")
    if response.steering is not None:
        assert isinstance(response.steering, Steering)
        env = envs.make_env("push_t", shifts=[("obstacle", 1.0)])
        env.reset(seed=0)
        response.bind(env)  # scene-aware rewards (steer_keep_out) read the episode's obstacle
        env.close()
        best, rewards = response.steering.select(torch.zeros(1, 4, 8, 2))
        assert rewards.shape == (1, 4)
    else:
        ctx = FallbackContext(action_dim=2, position_dims=(0, 1))
        ctx.record(np.array([0.1, 0.2]))
        action = response.fallback_action({"agent_pos": np.array([0.1, 0.2])}, ctx)
        assert action.shape == (2,) and np.isfinite(action).all()


def test_missing_user_fields_fail_before_running():
    with pytest.raises(Exception, match="callback"):
        response_from_config(OmegaConf.to_container(OmegaConf.load(CONF / "hand_over.yaml"), resolve=True,
                                                    throw_on_missing=True))


@pytest.mark.parametrize("config, words", [
    ({"fallback": {"name": "hover"}}, "unknown fallback 'hover'"),
    ({"fallback": "hold"}, "{name: <registered fallback>"),
    ({"steering": {"num_particles": 8}}, "steering needs a reward"),
    ({"steering": {"reward": {"name": "nope"}}}, "unknown reward 'nope'"),
    ({"fallback": {"name": "hold"}, "fallbak": {}}, "unknown response settings ['fallbak']"),
])
def test_bad_response_configs_name_the_problem(config, words):
    with pytest.raises((ValueError, KeyError), match=words.replace("[", "\\[").replace("{", "\\{")):
        response_from_config(config)
