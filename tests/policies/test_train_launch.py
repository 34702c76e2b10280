"""The hydra entry point and its policy config group."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from launch.train import run
from policies import PolicyConfig, load_policy

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "launch" / "conf"
GROUP = sorted(p.stem for p in (CONF / "policy").glob("*.yaml"))


def test_policy_group_has_every_kind_denoiser_and_encoder():
    assert {"diffusion_unet", "diffusion_mlp", "flow_unet", "flow_mlp", "diffusion_unet_image", "flow_unet_image"} <= set(GROUP)


@pytest.mark.parametrize("name", GROUP)
def test_every_policy_yaml_builds_a_valid_config(name):
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        cfg = compose(config_name="train", overrides=[f"policy={name}", "data=x", "out=y"])
    config = instantiate(cfg.policy, _convert_="all")
    assert isinstance(config, PolicyConfig)
    kind, denoiser, *image = name.split("_")
    assert (config.kind, config.denoiser, config.encoder) == (kind, denoiser, "image" if image else "lowdim")


def test_run_trains_and_saves_a_loadable_policy(bimodal_store, tmp_path):
    overrides = [f"data={bimodal_store}", f"out={tmp_path / 'run'}", "policy=flow_mlp", "policy.horizon=8",
                 "train.steps=3", "train.batch_size=16", "train.device=cpu", "train.progress=false"]
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        cfg = compose(config_name="train", overrides=overrides)
    result = run(cfg)
    assert result.step == 3 and (tmp_path / "run" / "train_run.yaml").exists()
    policy = load_policy(tmp_path / "run", device="cpu")
    assert policy.horizon == 8 and policy.obs_shapes == {"agent_pos": (2,)}
    assert policy.sample(torch.zeros(1, policy.embedding_dim), 2).shape == (1, 2, 8, 2)


def test_command_line_entry_point(bimodal_store, tmp_path):
    out = tmp_path / "cli"
    cmd = [sys.executable, "-m", "launch.train", f"data={bimodal_store}", f"out={out}", "policy=diffusion_mlp",
           "train.steps=2", "train.batch_size=8", "train.device=cpu", "train.progress=false", "train.cpu_threads=1"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "to step 2" in done.stdout and (out / "model.safetensors").exists() and (out / "train_run.yaml").exists()


def test_training_writes_tensorboard_events_and_a_loss_curve(bimodal_store, tmp_path):
    import matplotlib.image
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    overrides = [f"data={bimodal_store}", f"out={tmp_path / 'run'}", "policy=flow_mlp", "policy.horizon=8", "train.steps=4",
                 "train.val_every=2", "train.batch_size=16", "train.device=cpu", "train.progress=false"]
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        run(compose(config_name="train", overrides=overrides))
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    logged = [(e.step, e.value) for e in events.Scalars("loss/train")]
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())["train_loss"]
    assert [s for s, _ in logged] == [2, 4] == [s for s, _ in saved]
    assert [v for _, v in logged] == pytest.approx([v for _, v in saved], rel=1e-6)
    assert [e.step for e in events.Scalars("loss/val")] == [2, 4]
    png = matplotlib.image.imread(tmp_path / "run" / "loss_curve.png")
    assert png.ndim == 3 and png.shape[0] > 100 and png[..., :3].std() > 0.01  # a drawn figure, not a blank image


@pytest.mark.parametrize("given, named", [("progress=false", "train.progress=false"), ("steps=3000", "train.steps=3000"),
                                          ("n_action_steps=4", "policy.n_action_steps=4")])
def test_a_training_setting_given_without_its_group_is_named_with_it(tmp_path, given, named):
    """Every other stage takes progress=false at the top; launch.train keeps it (and steps, seed, ...) under train. and the
    policy's sizes under policy.: the bare key is refused naming the override that works, not as hydra's 'Could not
    override'."""
    cmd = [sys.executable, "-m", "launch.train", f"data={tmp_path}", f"out={tmp_path / 'policy'}", given]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode != 0
    assert f"{given}: launch.train takes it as {named}" in done.stderr, done.stderr[-2000:]
    assert not (tmp_path / "policy").exists()
