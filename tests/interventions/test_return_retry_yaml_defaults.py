"""launch/conf/response/return_retry.yaml lists every ReturnAndRetry setting (so the command line can override
each one): its values must be the class's defaults, the one definition docs/interventions.md's knob table states."""

from __future__ import annotations

import inspect
from pathlib import Path

import yaml

from fiper.interventions import HoldPosition, ReturnAndRetry, response_from_config

PRESET = Path(__file__).resolve().parents[2] / "launch" / "conf" / "response" / "return_retry.yaml"


def test_return_retry_preset_restates_the_class_defaults():
    values = yaml.safe_load(PRESET.read_text())
    assert values.pop("kind") == "return_retry"
    assert values.pop("fallback") == {"name": "hold"}  # the class's fallback=None is a HoldPosition
    defaults = {n: p.default for n, p in inspect.signature(ReturnAndRetry).parameters.items()}
    assert set(values) <= set(defaults), sorted(set(values) - set(defaults))
    differ = {k: (v, defaults[k]) for k, v in values.items() if v != defaults[k]}
    assert not differ, f"return_retry.yaml disagrees with ReturnAndRetry's defaults (yaml, class): {differ}"
    assert isinstance(ReturnAndRetry().fallback, HoldPosition)
    built = response_from_config({"kind": "return_retry", **values, "fallback": {"name": "hold"}})
    assert (built.max_retries, type(built.fallback)) == (2, HoldPosition)
