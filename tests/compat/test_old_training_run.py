"""Resuming a run saved before training left failed demonstrations out: it trained on every episode, so leaving them
out now is refused naming train.failed_demos=keep, which resumes it as it was trained."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fiper.storage import EpisodeStore
from policies import train_policy
from policies.toy_data import toy_policy_config, toy_train_config


def _store(path: Path) -> Path:
    """Three successful episodes and one failed one commanding 50 (far outside the others' range)."""
    store, rng = EpisodeStore.create(path, attrs={"task": "own"}), np.random.default_rng(0)
    for i, success in enumerate((True, True, True, False)):
        action = rng.uniform(-1, 1, (6 + i, 2)) if success else np.full((6 + i, 2), 50.0)
        store.append_episode({"agent_pos": rng.normal(size=(6 + i, 2)), "action": action}, meta={"success": success})
    return path


def _config(**overrides):
    return toy_train_config(toy_policy_config("diffusion", "mlp"), 4, batch_size=8, val_fraction=0.0, device="cpu",
                            progress=False, **overrides)


def _folder_bytes(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_an_old_run_trained_on_every_episode_resumes_only_keeping_them(tmp_path):
    store, run = _store(tmp_path / "d.zarr"), tmp_path / "run"
    config = _config(failed_demos="keep")
    train_policy(store, config, run, stop_at=2)
    saved = json.loads((run / "train_config.json").read_text())
    del saved["failed_demos"]  # the layout earlier versions wrote, which trained on every episode
    (run / "train_config.json").write_text(json.dumps(saved))
    before = _folder_bytes(run)
    default = _config()
    with pytest.raises(ValueError, match=r"trained on every episode .*including the 1 whose meta/success is false.*"
                                         r"resume with train.failed_demos=keep"):
        train_policy(store, default, run, resume=True)
    assert _folder_bytes(run) == before
    resumed = train_policy(store, config, run, resume=True)
    assert resumed.step == 4 and float(resumed.policy.normalizer.action.center.max()) > 20  # the failed episode's 50s still fitted
