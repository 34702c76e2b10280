"""What a training resume accepts (sampling-only settings) and refuses (other demonstrations, another network)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from policy_helpers import TASK, tiny_config, tiny_train_config

from policies import train_policy
from policies.toy_data import make_bimodal_demos


def _folder_bytes(path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("demos") / "small.zarr"
    make_bimodal_demos(path, n_episodes=12, task=TASK, seed=0)
    return path


def test_resume_accepts_a_new_n_action_steps_records_it_and_trains_as_without_it(small_store, tmp_path):
    config = tiny_train_config(tiny_config("flow"), 6, batch_size=8, val_every=3)
    train_policy(small_store, config, tmp_path / "run", stop_at=3)
    changed = tiny_train_config(tiny_config("flow", n_action_steps=2), 6, batch_size=8, val_every=3)
    resumed = train_policy(small_store, changed, tmp_path / "run", resume=True)
    assert resumed.step == 6 and resumed.policy.n_action_steps == 2
    assert json.loads((tmp_path / "run" / "config.json").read_text())["policy"]["n_action_steps"] == 2
    assert json.loads((tmp_path / "run" / "train_config.json").read_text())["policy"]["n_action_steps"] == 2
    straight = train_policy(small_store, config, tmp_path / "straight")
    for key, value in straight.policy.state_dict().items():
        torch.testing.assert_close(resumed.policy.state_dict()[key], value, msg=key)


def test_resume_refuses_a_change_that_training_reads_and_writes_nothing(small_store, tmp_path):
    train_policy(small_store, tiny_train_config(tiny_config("flow"), 2, batch_size=8), tmp_path / "run")
    before = _folder_bytes(tmp_path / "run")
    other = tiny_train_config(tiny_config("flow", n_action_steps=2, horizon=4), 4, batch_size=8)
    with pytest.raises(ValueError, match=r"horizon: saved 8, given 4.*out=<new dir>") as err:
        train_policy(small_store, other, tmp_path / "run", resume=True)
    assert "n_action_steps" not in str(err.value).split("Only")[0]
    assert _folder_bytes(tmp_path / "run") == before


def test_resume_on_another_store_is_refused_naming_both_before_anything_is_written(small_store, tmp_path):
    config = tiny_train_config(tiny_config("diffusion"), 4, batch_size=8)
    train_policy(small_store, config, tmp_path / "run", stop_at=2)
    before = _folder_bytes(tmp_path / "run")
    other = make_bimodal_demos(tmp_path / "other.zarr", n_episodes=12, task=TASK, seed=1).path
    with pytest.raises(ValueError, match="other demonstrations") as err:
        train_policy(other, config, tmp_path / "run", resume=True)
    message = str(err.value)
    assert str(small_store.resolve()) in message and str(other.resolve()) in message
    assert "out=<new dir>" in message and f"data={small_store.resolve()}" in message
    assert _folder_bytes(tmp_path / "run") == before
    assert json.loads((tmp_path / "run" / "config.json").read_text())["info"]["train_step"] == 2
    assert train_policy(small_store, config, tmp_path / "run", resume=True).step == 4  # the original data= resumes


def test_resume_on_a_store_that_gained_episodes_is_refused(tmp_path):
    store = make_bimodal_demos(tmp_path / "growing.zarr", n_episodes=8, task=TASK, seed=0)
    config = tiny_train_config(tiny_config("flow"), 4, batch_size=8)
    train_policy(store.path, config, tmp_path / "run", stop_at=2)
    rng = np.random.default_rng(0)
    store.append_episode({"agent_pos": rng.normal(size=(10, 2)).astype(np.float32),
                          "action": rng.normal(size=(10, 2)).astype(np.float32)}, meta={"mode": 0})
    with pytest.raises(ValueError, match="held 8 episodes when training began and holds 9 now"):
        train_policy(store.path, config, tmp_path / "run", resume=True)
