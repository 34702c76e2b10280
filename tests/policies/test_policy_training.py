"""Training mechanics: resume from the saved step, config checks, the image encoder end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from policy_helpers import tiny_config, tiny_train_config

from fiper.storage import EpisodeStore
from policies import TrainConfig, build_policy, train_policy
from policies import training
from policies.training import lr_factor, resolve_device, split_episodes


def test_resume_continues_from_the_saved_step_and_matches_an_uninterrupted_run(bimodal_store, tmp_path):
    config = tiny_train_config(tiny_config("diffusion"), 40, batch_size=32, val_every=10)
    first = train_policy(bimodal_store, config, tmp_path / "resumed", stop_at=20)
    assert first.step == 20
    assert json.loads((tmp_path / "resumed" / "config.json").read_text())["info"]["train_step"] == 20
    resumed = train_policy(bimodal_store, config, tmp_path / "resumed", resume=True)
    assert resumed.step == 40
    assert [s for s, _ in resumed.train_loss] == [10, 20, 30, 40]  # history continues, no restart at 0
    straight = train_policy(bimodal_store, config, tmp_path / "straight")
    for key, value in straight.policy.state_dict().items():
        torch.testing.assert_close(resumed.policy.state_dict()[key], value, msg=key)
    # Resuming a finished run is a no-op that keeps its step.
    assert train_policy(bimodal_store, config, tmp_path / "resumed", resume=True).step == 40


def test_periodic_and_final_checkpoints(bimodal_store, tmp_path, monkeypatch):
    saved = []
    original = training._Trainer.save

    def spy(self):
        saved.append(self.step)
        original(self)

    monkeypatch.setattr(training._Trainer, "save", spy)
    config = tiny_train_config(tiny_config("flow"), 25, batch_size=8, checkpoint_every=10, val_every=5)
    result = train_policy(bimodal_store, config, tmp_path / "run")
    assert saved == [10, 20, 25]
    assert [s for s, _ in result.val_loss] == [5, 10, 15, 20, 25]


def test_device_choice():
    if torch.cuda.is_available():
        assert resolve_device("auto").type == "cuda"
    else:
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


def test_resume_rejects_a_different_policy_config(bimodal_store, tmp_path):
    train_policy(bimodal_store, tiny_train_config(tiny_config("flow"), 2, batch_size=8), tmp_path / "run")
    other = tiny_train_config(tiny_config("flow", embed_dim=16), 4, batch_size=8)
    with pytest.raises(ValueError, match="policy config differs"):
        train_policy(bimodal_store, other, tmp_path / "run", resume=True)


def test_episode_split_and_lr_schedule():
    train, val = split_episodes(20, 0.1, seed=0)
    assert len(val) == 2 and len(train) == 18 and not set(train) & set(val)
    assert split_episodes(1, 0.1, 0)[1].size == 0 and split_episodes(5, 0.0, 0)[1].size == 0
    assert lr_factor(0, 10, 100) == pytest.approx(0.1) and lr_factor(9, 10, 100) == pytest.approx(1.0)
    assert lr_factor(55, 10, 100) == pytest.approx(0.5) and lr_factor(100, 10, 100) == pytest.approx(0.0)


@pytest.mark.parametrize(
    "overrides,match",
    [
        (dict(kind="gan"), "kind"),
        (dict(denoiser="transformer"), "denoiser"),
        (dict(denoiser="unet", horizon=6, down_dims=[16, 32, 64]), "multiple of 4"),
        (dict(n_action_steps=9), "cannot exceed horizon"),
        (dict(down_dims=[12, 32]), "multiple of n_groups"),
        (dict(obs_keys=["agent_pos", "action"]), "prediction target"),
        (dict(kernel_size=4), "odd"),
        (dict(num_inference_steps=0), "num_inference_steps"),
        (dict(ddim_eta=2.0), "ddim_eta"),
    ],
)
def test_policy_config_rejects_bad_values(overrides, match):
    with pytest.raises(ValueError, match=match):
        tiny_config(overrides.pop("kind", "diffusion"), overrides.pop("denoiser", "mlp"), **overrides)


@pytest.mark.parametrize(
    "overrides,match",
    [(dict(lr=-1.0), "lr"), (dict(steps=0), "steps"), (dict(device="tpu"), "device"), (dict(ema_decay=1.0), "ema_decay"),
     (dict(val_fraction=1.0), "val_fraction"), (dict(cpu_threads=0), "cpu_threads")],
)
def test_train_config_rejects_bad_values(overrides, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**overrides)
    with pytest.raises(ValueError, match="unknown TrainConfig fields"):
        TrainConfig.from_dict({"stepz": 3})


def random_image_store(path, image_key: str, pos_key: str, episodes: int, steps: int, size: int) -> np.random.Generator:
    """Random RGB images, 2-d proprioception and 2-d actions; returns the generator for more draws."""
    rng = np.random.default_rng(0)
    store = EpisodeStore.create(path)
    for _ in range(episodes):
        store.append_episode({image_key: rng.integers(0, 256, (steps, size, size, 3), dtype=np.uint8),
                              pos_key: rng.normal(size=(steps, 2)).astype(np.float32),
                              "action": rng.normal(size=(steps, 2)).astype(np.float32)})
    return rng


def test_image_policy_trains_and_samples(tmp_path):
    """Random 96x96 RGB images + proprioception: shapes, finite and decreasing loss, sampling."""
    rng = random_image_store(tmp_path / "images.zarr", "image", "agent_pos", episodes=3, steps=12, size=96)
    pc = tiny_config("diffusion", encoder="image", image_channels=[8, 16], image_keypoints=8, n_groups=4,
                     down_dims=[8, 16], mlp_hidden=64)
    result = train_policy(tmp_path / "images.zarr", tiny_train_config(pc, 24, batch_size=8, val_every=6, lr=3e-3,
                                                                        val_fraction=0.0), tmp_path / "run")
    losses = [loss for _, loss in result.train_loss]
    assert len(losses) == 4 and np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    policy = result.policy
    assert policy.obs_shapes == {"agent_pos": (2,), "image": (96, 96, 3)}
    obs = {"image": torch.from_numpy(rng.integers(0, 256, (2, 2, 96, 96, 3), dtype=np.uint8)), "agent_pos": torch.zeros(2, 2, 2)}
    z = policy.encode(obs)
    assert z.shape == (2, policy.embedding_dim) and torch.isfinite(z).all()
    assert policy.sample(z, 4).shape == (2, 4, 8, 2)
    with pytest.raises(ValueError, match=r"expected \(N, n_obs_steps, \*shape\) = \(N, 2, 96, 96, 3\)"):
        policy.encode({**obs, "image": torch.zeros(2, 2, 84, 84, 3, dtype=torch.uint8)})
    with pytest.raises(ValueError, match="encoder='image'"):
        build_policy(tiny_config("flow"), {"image": (96, 96, 3)}, 2)
    text = EpisodeStore.create(tmp_path / "text.zarr")
    text.append_episode({"task": np.array(["pick"] * 12), "action": np.zeros((12, 2), np.float32)})
    with pytest.raises(ValueError, match=r"observation 'task' holds \S+ values, which the policies cannot read.*policy.obs_keys"):
        train_policy(tmp_path / "text.zarr", tiny_train_config(tiny_config("flow"), 1), tmp_path / "text_run")
    for shape in ((3, 96, 96), (96, 96, 1)):  # channel-first and grey: refused, not flattened into the low-dim MLP
        with pytest.raises(ValueError, match=rf"observation 'pixels' has per-step shape \({shape[0]}, .*channels last"):
            build_policy(tiny_config("flow"), {"pixels": shape}, 2)


def test_image_downsample_pools_before_the_trunk():
    """image_downsample=2 feeds the trunk the 2x2-averaged image (a 48 px trunk), and must divide the size."""
    from policies.encoders import ImageTrunk

    torch.manual_seed(0)
    pooled = ImageTrunk((96, 96, 3), [8, 16], 8, 4, downsample=2)
    plain = ImageTrunk((48, 48, 3), [8, 16], 8, 4)
    shifted = {}  # the pooled trunk's layer i is the plain trunk's layer i - 1 (layer 0 is the pool)
    for key, value in pooled.convs.state_dict().items():
        index, rest = key.split(".", 1)
        shifted[f"{int(index) - 1}.{rest}"] = value
    plain.convs.load_state_dict(shifted)
    plain.softmax.load_state_dict(pooled.softmax.state_dict())
    images = torch.rand(3, 96, 96, 3)
    small = images.reshape(3, 48, 2, 48, 2, 3).mean(dim=(2, 4))
    assert pooled.softmax.grid.shape == plain.softmax.grid.shape == (12 * 12, 2)
    torch.testing.assert_close(pooled(images), plain(small), atol=1e-5, rtol=1e-5)
    pc = tiny_config("diffusion", encoder="image", image_channels=[8, 16], image_keypoints=8, n_groups=4, image_downsample=2)
    policy = build_policy(pc, {"image": (96, 96, 3), "agent_pos": (2,)}, 2)
    z = policy.encode({"image": torch.zeros(2, 2, 96, 96, 3, dtype=torch.uint8), "agent_pos": torch.zeros(2, 2, 2)})
    assert z.shape == (2, policy.embedding_dim)
    with pytest.raises(ValueError, match=r"image_downsample=5 must divide the sides of the images \{'image': \(96, 96\)\}: choose one of \[1, 2, 3, 4, 6, 8, 12, 16, 24, 32\]"):
        build_policy(tiny_config("diffusion", encoder="image", image_channels=[8], n_groups=4, image_downsample=5),
                     {"image": (96, 96, 3)}, 2)
    with pytest.raises(ValueError, match="image_downsample"):
        tiny_config("diffusion", image_downsample=0)


def test_dotted_observation_keys_train_save_and_load(tmp_path):
    """Keys such as lerobot's 'observation.state' or a nested env's 'robot.pos' (torch submodule names cannot hold a
    '.'): the policy trains on them, and the saved checkpoint loads and encodes alike."""
    from policies import load_policy

    rng = random_image_store(tmp_path / "dotted.zarr", "observation.images.top", "robot.pos", episodes=2, steps=10, size=16)
    pc = tiny_config("flow", encoder="image", image_channels=[8], image_keypoints=4, n_groups=4, down_dims=[8, 16], mlp_hidden=32)
    result = train_policy(tmp_path / "dotted.zarr", tiny_train_config(pc, 4, batch_size=8, val_fraction=0.0), tmp_path / "run")
    loaded = load_policy(tmp_path / "run")
    obs = {"observation.images.top": torch.from_numpy(rng.integers(0, 256, (2, 2, 16, 16, 3), dtype=np.uint8)),
           "robot.pos": torch.ones(2, 2, 2)}
    assert loaded.obs_shapes == {"observation.images.top": (16, 16, 3), "robot.pos": (2,)}
    torch.testing.assert_close(loaded.encode(obs), result.policy.encode(obs))
    assert not torch.equal(loaded.normalizer.obs["robot%2Epos"].scale, torch.ones_like(loaded.normalizer.obs["robot%2Epos"].scale))


def test_float_images_are_read_as_pixel_levels_or_refused():
    """The policy divides images by 255: pixel levels held as floats read as the uint8 image, while a [0, 1] or a
    standardised float image (read as near black) is refused naming the conversion."""
    pc = tiny_config("diffusion", encoder="image", image_channels=[8], image_keypoints=4, n_groups=4)
    policy = build_policy(pc, {"image": (16, 16, 3), "agent_pos": (2,)}, 2)
    image = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (1, 2, 16, 16, 3), dtype=np.uint8))
    obs = {"image": image, "agent_pos": torch.zeros(1, 2, 2)}
    torch.testing.assert_close(policy.encode({**obs, "image": image.float()}), policy.encode(obs))
    for bad, shown in ((image.float() / 255, r"\[0, 1\]"), ((image.float() - 128) / 64, r"\[-2, 1.98\]")):
        with pytest.raises(ValueError, match=rf"obs\['image'\] is a float32 image with values in {shown}: .*\(x \* 255\).round\(\)"):
            policy.encode({**obs, "image": bad})
        with pytest.raises(ValueError, match="pixel levels in"):
            policy.encode({**obs, "image": bad.numpy()})
