"""The note on score entries left as shipped for pick-and-place is not given for entries the user stated: in a config
file of their own (``--config-dir`` / ``--config-name``, as every example runs) or on the command line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig

from fiper.storage import EpisodeStore
from launch.pipeline_checks import check_action_dims, hydra_stated_keys, stated_keys

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "launch" / "conf"
NOTE = "[monitor] note: monitor.scores.ace.dims=[0, 1, 2] are the settings shipped for 'pick_place'"
OWN_CONFIG = "defaults:\n  - pipeline\n  - _self_\ntask: push_t\nmonitor:\n  scores:\n    ace: {dims: [0, 1, 2]}\n"


def _demos(path: Path) -> Path:
    store = EpisodeStore.create(path, attrs={"task": "Lift"})
    store.append_episode({"obs": np.zeros((3, 4)), "action": np.zeros((3, 7), np.float32)})
    return path


def test_stated_keys_are_the_overrides_and_the_own_config_files_dotted_keys(tmp_path):
    own = tmp_path / "pipeline_mine.yaml"
    own.write_text(OWN_CONFIG)
    keys = stated_keys(["+rollouts.factories.heavy=m:f", "train.steps=10", "~act"], [own])
    assert {"rollouts.factories.heavy", "train.steps", "act", "task", "monitor.scores.ace.dims", "defaults"} == keys
    assert hydra_stated_keys() == set()  # outside a hydra app


def _composed(config_dir: Path, name: str, overrides: list[str]):
    with initialize_config_dir(config_dir=str(config_dir), version_base=None):
        cfg = compose(config_name=name, overrides=[f"hydra.searchpath=[file://{CONF}]", *overrides], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    return cfg


def test_dims_stated_in_an_own_config_file_or_an_override_get_no_note_the_shipped_ones_do(tmp_path, capsys):
    import launch.components  # noqa: F401  (stores the score and monitor groups, as launch.pipeline does on import)

    demos = _demos(tmp_path / "demos.zarr")
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "pipeline_mine.yaml").write_text(OWN_CONFIG)
    try:
        own = _composed(tmp_path / "conf", "pipeline_mine", [])
        assert "monitor.scores.ace.dims" in hydra_stated_keys()
        check_action_dims(own, demos, hydra_stated_keys())
        assert NOTE not in capsys.readouterr().out
        shipped = _composed(CONF, "pipeline", ["task=push_t"])  # launch/conf/pipeline.yaml's dims, not stated
        assert "monitor.scores.ace.dims" not in hydra_stated_keys()
        check_action_dims(shipped, demos, hydra_stated_keys())
        assert NOTE in capsys.readouterr().out
        overridden = _composed(CONF, "pipeline", ["task=push_t", "monitor.scores.ace.dims=[0,1,2]"])
        check_action_dims(overridden, demos, hydra_stated_keys())
        assert NOTE not in capsys.readouterr().out
    finally:
        HydraConfig.instance().cfg = None
