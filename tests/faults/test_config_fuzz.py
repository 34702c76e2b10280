"""Fuzzed config values: for every entry point, a numeric key given a random value of the wrong type or range
ends in a ConfigError (a ValueError) naming that key, before any work and without creating a file."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from launch.validate import ConfigError

from test_config_validation import CONF, MODULES, files, inputs

TEXT = st.text(alphabet=st.characters(blacklist_characters="$\\", blacklist_categories=("Cs",)), max_size=8)
NON_INTEGRAL = st.floats(allow_nan=True, allow_infinity=True).filter(lambda x: not math.isfinite(x) or x != int(x))
ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True)
SMALL_LIST = st.lists(st.one_of(st.integers(-3, 3), TEXT), max_size=2)


def bad(kind: str) -> st.SearchStrategy:
    """Values a key of this kind must refuse."""
    not_a_number = st.one_of(TEXT, st.booleans(), SMALL_LIST)
    if kind in ("positive_int", "optional_positive_int"):
        wrong = st.one_of(not_a_number, NON_INTEGRAL, st.integers(max_value=0), ANY_FLOAT)
    elif kind == "seed":
        wrong = st.one_of(not_a_number, NON_INTEGRAL, st.integers(max_value=-1))
    elif kind in ("probability", "optional_probability"):
        wrong = st.one_of(not_a_number, st.integers(), ANY_FLOAT.filter(lambda x: not 0 < x < 1))
    elif kind == "probabilities":
        outside = ANY_FLOAT.filter(lambda x: not 0 < x < 1)
        wrong = st.one_of(TEXT, st.booleans(), ANY_FLOAT, st.just([]), st.lists(st.one_of(outside, TEXT, st.booleans()), min_size=1, max_size=3))
    else:
        raise ValueError(kind)
    return wrong if kind.startswith("optional") else st.one_of(wrong, st.none())


KEYS = {
    "collect": {"n_episodes": "positive_int", "seed": "seed", "max_attempts": "optional_positive_int"},
    "train": {"train.steps": "positive_int", "train.batch_size": "positive_int", "train.warmup_steps": "seed", "train.seed": "seed",
              "policy.horizon": "positive_int", "policy.n_action_steps": "positive_int"},
    "fit": {"num_samples": "optional_positive_int", "seed": "seed", "cpu_threads": "optional_positive_int"},
    "calibrate": {"delta": "optional_probability", "seed": "seed", "cpu_threads": "optional_positive_int"},
    "stress": {"num_samples": "optional_positive_int", "seeds.start": "seed", "seeds.count": "positive_int", "cpu_threads": "optional_positive_int"},
    "evaluate": {"repeats": "positive_int", "seed": "seed", "deltas": "probabilities", "split.fit": "probability",
                 "split.calibration": "probability", "band_d1_fraction": "probability", "plot_delta": "probability"},
    "pipeline": {"collect.n_episodes": "positive_int", "rollouts.num_samples": "positive_int", "rollouts.seeds_per_cell": "positive_int",
                 "rollouts.fit_episodes": "positive_int", "monitor.delta": "probability", "deploy_delta": "optional_probability",
                 "train.steps": "positive_int", "seed": "seed"},
}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def base(root):
    """Every entry point's valid config, composed once (each example changes one key of a copy)."""
    with initialize_config_dir(config_dir=CONF, version_base=None):
        return {entry: compose(config_name=entry, overrides=overrides) for entry, overrides in inputs(root).items()}


@pytest.mark.parametrize("entry", list(KEYS))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_wrong_numeric_value_is_a_named_config_error_and_creates_nothing(root, base, entry, data):
    key = data.draw(st.sampled_from(sorted(KEYS[entry])), label="key")
    value = data.draw(bad(KEYS[entry][key]), label="value")
    before = files(root)
    cfg = copy.deepcopy(base[entry])
    OmegaConf.update(cfg, key, value)
    with initialize_config_dir(config_dir=CONF, version_base=None):  # the pipeline composes its stages' configs
        with pytest.raises(ConfigError) as err:
            MODULES[entry].run(cfg)
    assert f"\n  {key}=" in str(err.value)
    assert files(root) == before
