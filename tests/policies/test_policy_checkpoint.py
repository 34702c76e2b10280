"""Saving and loading policies: identical samples after a round trip, clear errors for missing files."""

from __future__ import annotations

import json

import pytest
import torch
from policy_helpers import OBS_SHAPES, TASK, tiny_config, tiny_train_config
from safetensors.torch import load_file

from policies import DiffusionPolicy, FlowPolicy, build_policy, load_policy, train_policy


@pytest.mark.parametrize("kind", ["diffusion", "flow"])
def test_save_load_gives_identical_samples(trained, kind, tmp_path):
    policy = trained(kind).policy
    policy.save(tmp_path / "ckpt")
    loaded = load_policy(tmp_path / "ckpt", device="cpu")
    assert type(loaded) is (DiffusionPolicy if kind == "diffusion" else FlowPolicy)
    assert loaded.config == policy.config and loaded.obs_shapes == policy.obs_shapes
    obs = {"agent_pos": torch.from_numpy(TASK.start_obs(2, n=3))}
    z, z_loaded = policy.encode(obs), loaded.encode(obs)
    assert torch.equal(z, z_loaded)
    a = policy.sample(z, 64, generator=torch.Generator().manual_seed(5))
    b = loaded.sample(z_loaded, 64, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_checkpoint_holds_model_ema_and_normalizer_as_safetensors(trained):
    out = trained("flow").out_dir
    tensors = load_file(str(out / "model.safetensors"))
    assert any(k.startswith("model.") for k in tensors) and any(k.startswith("ema.") for k in tensors)
    assert {"normalizer.action.center", "normalizer.action.scale", "normalizer.obs.agent_pos.scale"} <= set(tensors)
    meta = json.loads((out / "config.json").read_text())
    assert meta["kind"] == "flow" and meta["info"]["train_step"] == 800 and meta["action_dim"] == 2
    # Training fitted the normalizer: actions span [-1, 1] per dimension.
    scale = tensors["normalizer.action.scale"]
    assert torch.all(scale > 0.5) and torch.all(scale < 2.0)
    # The trainer's own loader sees the same policy.
    assert torch.equal(load_policy(out, "cpu").state_dict()["ema.denoiser.inp.weight"], tensors["ema.denoiser.inp.weight"])


def test_missing_checkpoint_names_path_and_how_to_make_one(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no policy checkpoint at .*nowhere.*python -m launch.train"):
        load_policy(tmp_path / "nowhere")
    policy = build_policy(tiny_config("diffusion"), OBS_SHAPES, 2)
    policy.save(tmp_path / "partial")
    (tmp_path / "partial" / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing .*model.safetensors"):
        load_policy(tmp_path / "partial")


def test_foreign_config_json_is_rejected(tmp_path):
    policy = build_policy(tiny_config("flow"), OBS_SHAPES, 2)
    policy.save(tmp_path / "p")
    (tmp_path / "p" / "config.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ValueError, match="not a fiper policy checkpoint"):
        load_policy(tmp_path / "p")


def test_training_refuses_to_overwrite_a_checkpoint(bimodal_store, tmp_path):
    config = tiny_train_config(tiny_config("flow"), 3, batch_size=16)
    train_policy(bimodal_store, config, tmp_path / "run")
    with pytest.raises(FileExistsError, match="resume=True"):
        train_policy(bimodal_store, config, tmp_path / "run")
