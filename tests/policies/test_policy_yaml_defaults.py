"""The policy and train yamls restate PolicyConfig / TrainConfig defaults: they must not drift from the dataclasses."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from policies import PolicyConfig, TrainConfig

CONF = Path(__file__).resolve().parents[2] / "launch" / "conf"
VARIANT = ("kind", "denoiser", "encoder")  # what a policy yaml chooses; every other value is PolicyConfig's default
FLOW_STEPS = 10  # the one default a yaml sets apart: flow policies' Euler steps (docs/policies.md, PolicyConfig table)


@pytest.mark.parametrize("path", sorted((CONF / "policy").glob("*.yaml")), ids=lambda p: p.stem)
def test_policy_yaml_restates_the_dataclass_defaults(path):
    values = yaml.safe_load(path.read_text())
    assert values.pop("_target_") == "policies.PolicyConfig"
    kind, denoiser, encoder = (values[k] for k in VARIANT)
    assert path.stem == f"{kind}_{denoiser}" + ("_image" if encoder == "image" else "")
    expected = PolicyConfig(kind=kind, denoiser=denoiser, encoder=encoder,
                            **({"num_inference_steps": FLOW_STEPS} if kind == "flow" else {})).to_dict()
    differ = {k: (v, expected[k]) for k, v in values.items() if v != expected[k]}
    assert not differ, f"{path.name} disagrees with PolicyConfig's defaults (yaml, dataclass): {differ}"


def test_train_yaml_restates_the_dataclass_defaults():
    values = yaml.safe_load((CONF / "train.yaml").read_text())["train"]
    assert values.pop("_target_") == "policies.TrainConfig"
    defaults = {f.name: f.default for f in fields(TrainConfig) if f.name != "policy"}
    assert set(values) == set(defaults), sorted(set(values) ^ set(defaults))
    differ = {k: (v, defaults[k]) for k, v in values.items() if v != defaults[k]}
    assert not differ, f"train.yaml disagrees with TrainConfig's defaults (yaml, dataclass): {differ}"
