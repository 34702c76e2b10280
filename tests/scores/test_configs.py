"""Every registered score is a hydra config group built from its class's defaults, and nothing else."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pathlib import Path

from hydra import compose, initialize_config_dir

import launch.components  # noqa: F401
from fiper.monitor.spec import ScoreSpec
from fiper.scores import SCORES, ScoreFitData

CONF = str(Path(__file__).resolve().parents[2] / "launch" / "conf")


@pytest.mark.parametrize("name", sorted(SCORES))
def test_score_group_composes_to_the_class_defaults(name):
    with initialize_config_dir(config_dir=CONF, version_base=None):
        cfg = compose("fit", overrides=[f"+score@probe={name}"])
    score = ScoreSpec.of(dict(cfg.probe)).build()
    assert type(score) is SCORES[name] and score.config == SCORES[name]().config


def test_one_override_changes_one_value_and_is_validated():
    with initialize_config_dir(config_dir=CONF, version_base=None):
        cfg = compose("fit", overrides=["monitor.scores.ace.kappa=0.05"])
        spec = ScoreSpec.of(dict(cfg.monitor.scores.ace))
        assert spec.params["kappa"] == 0.05 and spec.params["margin"] == SCORES["ace"]().config["margin"]
        bad = compose("fit", overrides=["monitor.scores.ace.kappa=-1"])
    with pytest.raises(ValueError, match="kappa"):
        ScoreSpec.of(dict(bad.monitor.scores.ace))


def test_built_score_fits_and_saves_json_config():
    score = ScoreSpec("ace", {"kappa": 0.03}).build()
    g = np.random.default_rng(0)
    score.fit(ScoreFitData(None, g.normal(size=(4, 8, 4, 2)), [4]))
    _, config = score.state()
    assert json.loads(json.dumps(config))["params"]["kappa"] == 0.03
