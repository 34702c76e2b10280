"""Sweep launcher presets compose (local joblib, SLURM via submitit) for every rollout entry point."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

import launch.components  # noqa: F401  (the generated score/monitor/method groups the configs compose)

CONF = Path(__file__).resolve().parents[1] / "launch" / "conf"


@pytest.mark.parametrize(("preset", "target"), [("local", "JoblibLauncher"), ("slurm", "SlurmLauncher")])
@pytest.mark.parametrize("entry", ["stress", "evaluate", "collect"])
def test_launcher_preset_composes(entry, preset, target):
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        cfg = compose(config_name=entry, overrides=[f"hydra/launcher={preset}", "out=x"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith(target)
