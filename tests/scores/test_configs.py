"""Every launch/conf/score/*.yaml builds its registered score through hydra's instantiate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf
from omegaconf.errors import MissingMandatoryValue

from fiper.scores import SCORES, ScoreFitData

CONF = Path(__file__).resolve().parents[2] / "launch" / "conf" / "score"


def test_one_yaml_per_registered_score():
    assert sorted(p.stem for p in CONF.glob("*.yaml")) == sorted(SCORES)


@pytest.mark.parametrize("name", sorted(SCORES))
def test_yaml_instantiates_the_score_with_its_defaults(name):
    cfg = OmegaConf.load(CONF / f"{name}.yaml")
    if name == "stac":
        cfg.n_action_steps = 8  # left mandatory (???): it is the policy's, not the score's
    score = instantiate(cfg)
    assert type(score) is SCORES[name] and score.name == name
    defaults = type(score)(n_action_steps=8) if name == "stac" else type(score)()
    assert score.config == defaults.config  # the yaml restates the class defaults


def test_stac_yaml_demands_n_action_steps():
    with pytest.raises(MissingMandatoryValue, match="n_action_steps"):
        instantiate(OmegaConf.load(CONF / "stac.yaml"))


def test_yaml_built_score_fits_and_saves_json_config():
    score = instantiate(OmegaConf.load(CONF / "ace.yaml"))
    g = np.random.default_rng(0)
    score.fit(ScoreFitData(None, g.normal(size=(4, 8, 4, 2)), [4]))
    _, config = score.state()
    assert json.loads(json.dumps(config))["params"]["kappa"] == 0.03
