"""On a CUDA machine: policies train, sample, save and load on the GPU, and agree with the CPU.

Reuses the session toy store (``bimodal_store``, tests/policies/conftest.py) and the tiny configs of
policy_helpers. CPU-vs-GPU comparisons feed both devices the same noise (the CPU and CUDA random
streams differ by design) with TF32 off, and allow float32 round-off only:
``ATOL`` in environment units (the toy actions span about [-2, 2]).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from policy_helpers import OBS_SHAPES, TASK, tiny_config, tiny_train_config
from safetensors.torch import load_file

from policies import build_policy, load_policy, train_policy
from policies import training

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

DEVICE = torch.device("cuda")
STEPS, VAL_EVERY = 30, 10
ATOL = 1e-4  # CPU vs GPU, same weights and noise, float32 without TF32
VARIANTS = [("diffusion", "mlp"), ("diffusion", "unet"), ("flow", "mlp"), ("flow", "unet")]


@pytest.fixture
def ieee_fp32():
    """Full float32 matmuls and convolutions (cuDNN allows TF32 by default) while a test compares with the CPU."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.fixture(scope="module")
def gpu_run(bimodal_store, tmp_path_factory):
    """gpu_run(kind) -> TrainResult of a tiny MLP policy trained STEPS steps on the GPU (once per module)."""
    cache = {}

    def get(kind: str):
        if kind not in cache:
            out = tmp_path_factory.mktemp(f"cuda_{kind}_run")
            cache[kind] = train_policy(bimodal_store, tiny_train_config(tiny_config(kind), STEPS, device=str(DEVICE), val_every=VAL_EVERY), out)
        return cache[kind]

    return get


def start_obs(n: int = 3) -> dict[str, torch.Tensor]:
    return {"agent_pos": torch.from_numpy(TASK.start_obs(2, n=n))}


def on_device(module: torch.nn.Module) -> set[str]:
    return {t.device.type for t in [*module.parameters(), *module.buffers()]}


@pytest.mark.parametrize("kind", ["diffusion", "flow"])
def test_training_on_the_gpu_keeps_everything_there_and_checkpoints_cpu_tensors(gpu_run, kind):
    result = gpu_run(kind)
    policy = result.policy
    assert result.step == STEPS and on_device(policy) == {DEVICE.type} and policy.device.type == DEVICE.type
    losses = [loss for _, loss in result.train_loss]
    assert [s for s, _ in result.train_loss] == [10, 20, 30] and np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert np.all(np.isfinite([loss for _, loss in result.val_loss]))
    saved = load_file(str(result.out_dir / "model.safetensors"))
    state = policy.state_dict()
    assert set(saved) == set(state) and all(t.device.type == "cpu" for t in saved.values())
    for key, value in state.items():
        assert torch.equal(saved[key], value.cpu()), key
    assert json.loads((result.out_dir / "config.json").read_text())["info"]["train_step"] == STEPS


@pytest.mark.parametrize("kind", ["diffusion", "flow"])
def test_gpu_sampling_is_seeded_finite_and_stays_on_the_gpu(gpu_run, kind):
    policy = gpu_run(kind).policy
    z = policy.encode(start_obs())
    assert z.shape == (3, policy.embedding_dim) and z.device.type == DEVICE.type and torch.isfinite(z).all()

    def draw(seed: int) -> torch.Tensor:
        return policy.sample(z, 64, generator=torch.Generator(device=policy.device).manual_seed(seed))

    a, b, c = draw(5), draw(5), draw(6)
    assert a.shape == (3, 64, policy.horizon, policy.action_dim) and a.dtype == torch.float32
    assert a.device.type == DEVICE.type and torch.isfinite(a).all()
    assert torch.equal(a, b)  # same CUDA generator seed: the same samples
    assert (a - c).abs().max() > 1e-3
    with pytest.raises(ValueError, match="generator is on cpu"):
        policy.sample(z, 4, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("kind", ["diffusion", "flow"])
def test_gpu_checkpoint_loads_on_cpu_and_on_gpu(gpu_run, kind, tmp_path, ieee_fp32):
    policy = gpu_run(kind).policy
    policy.save(tmp_path / "ckpt")
    on_cpu, on_gpu = load_policy(tmp_path / "ckpt", device="cpu"), load_policy(tmp_path / "ckpt", device=str(DEVICE))
    assert on_device(on_cpu) == {"cpu"} and on_device(on_gpu) == {DEVICE.type} and not on_gpu.training
    for key, value in on_cpu.state_dict().items():
        assert torch.equal(on_gpu.state_dict()[key].cpu(), value) and torch.equal(policy.state_dict()[key].cpu(), value), key
    obs = start_obs()
    z, z_gpu, z_cpu = policy.encode(obs), on_gpu.encode(obs), on_cpu.encode(obs)
    assert torch.equal(z_gpu, z)
    torch.testing.assert_close(z_cpu, z.cpu(), atol=1e-5, rtol=1e-5)
    gen = lambda: torch.Generator(device=DEVICE).manual_seed(5)  # noqa: E731
    assert torch.equal(on_gpu.sample(z_gpu, 32, generator=gen()), policy.sample(z, 32, generator=gen()))
    # CPU vs GPU: the same noise through both samplers.
    noise = torch.randn((3, 32, policy.horizon, policy.action_dim), generator=torch.Generator().manual_seed(5))
    cpu_chunks = on_cpu.normalizer.action.unnormalize(on_cpu._sample_normalized(noise, z_cpu.repeat_interleave(32, 0), None, None))
    gpu_chunks = on_gpu.normalizer.action.unnormalize(on_gpu._sample_normalized(noise.to(DEVICE), z_gpu.repeat_interleave(32, 0), None, None))
    assert gpu_chunks.device.type == DEVICE.type and torch.isfinite(gpu_chunks).all()
    torch.testing.assert_close(gpu_chunks.cpu(), cpu_chunks, atol=ATOL, rtol=0)


@pytest.mark.parametrize("kind,denoiser", VARIANTS)
def test_untrained_gpu_policy_matches_the_cpu_with_a_normalizer_fitted_from_gpu_tensors(kind, denoiser, ieee_fp32):
    """Every denoiser (the U-Net is the default config: cuDNN convolutions), built on the CPU and moved."""
    torch.manual_seed(0)
    cpu = build_policy(tiny_config(kind, denoiser), OBS_SHAPES, 2).eval()
    gpu = build_policy(tiny_config(kind, denoiser), OBS_SHAPES, 2).eval()
    gpu.load_state_dict(cpu.state_dict())
    gpu.to(DEVICE)
    rng = np.random.default_rng(0)
    pos, act = rng.uniform(-2, 2, (200, 2)).astype(np.float32), rng.uniform(-2, 2, (200, 2)).astype(np.float32)
    cpu.fit_normalizer({"agent_pos": pos}, act)
    gpu.fit_normalizer({"agent_pos": torch.from_numpy(pos).to(DEVICE)}, torch.from_numpy(act).to(DEVICE))
    for key, value in cpu.normalizer.state_dict().items():
        assert torch.equal(gpu.normalizer.state_dict()[key].cpu(), value), key
    obs = {"agent_pos": torch.from_numpy(rng.uniform(-2, 2, (2, 2, 2)).astype(np.float32))}
    z_cpu, z_gpu = cpu.encode(obs), gpu.encode(obs)
    torch.testing.assert_close(z_gpu.cpu(), z_cpu, atol=1e-5, rtol=1e-5)
    noise = torch.randn((2, 16, 8, 2), generator=torch.Generator().manual_seed(1))
    a = cpu._sample_normalized(noise, z_cpu.repeat_interleave(16, 0), None, None)
    b = gpu._sample_normalized(noise.to(DEVICE), z_gpu.repeat_interleave(16, 0), None, None)
    assert b.shape == (2, 16, 8, 2) and b.device.type == DEVICE.type and torch.isfinite(b).all()
    torch.testing.assert_close(b.cpu(), a, atol=ATOL, rtol=0)


def test_image_policy_encodes_on_the_gpu_like_on_the_cpu(ieee_fp32):
    """The image encoder (conv trunk + spatial softmax) on uint8 HWC frames."""
    torch.manual_seed(0)
    pc = tiny_config("diffusion", encoder="image", image_channels=[8, 16], image_keypoints=8, n_groups=4, down_dims=[8, 16])
    shapes = {"image": (32, 32, 3), "agent_pos": (2,)}
    cpu = build_policy(pc, shapes, 2).eval()
    gpu = build_policy(pc, shapes, 2).eval()
    gpu.load_state_dict(cpu.state_dict())
    gpu.to(DEVICE)
    rng = np.random.default_rng(0)
    obs = {"image": torch.from_numpy(rng.integers(0, 256, (2, 2, 32, 32, 3), dtype=np.uint8)), "agent_pos": torch.zeros(2, 2, 2)}
    z_cpu, z_gpu = cpu.encode(obs), gpu.encode(obs)
    assert z_gpu.shape == (2, pc.embed_dim) and z_gpu.device.type == DEVICE.type
    torch.testing.assert_close(z_gpu.cpu(), z_cpu, atol=1e-5, rtol=1e-5)
    chunks = gpu.sample(z_gpu, 4, generator=torch.Generator(device=DEVICE).manual_seed(0))
    assert chunks.shape == (2, 4, 8, 2) and torch.isfinite(chunks).all()


def test_resumed_gpu_training_matches_an_uninterrupted_run(bimodal_store, tmp_path):
    config = tiny_train_config(tiny_config("diffusion"), 20, batch_size=32, val_every=5, device=str(DEVICE))
    train_policy(bimodal_store, config, tmp_path / "resumed", stop_at=10)
    trainer = training._Trainer(bimodal_store, config, tmp_path / "resumed", resume=True)
    assert trainer.step == 10 and on_device(trainer.policy) == {DEVICE.type}
    state = trainer.optimizer.state
    assert state and all(s["exp_avg"].device.type == DEVICE.type for s in state.values())
    # AdamW keeps its step counters on the host, as in a run that was never interrupted.
    assert all(s["step"].device.type == "cpu" for s in state.values())
    resumed = trainer.run()
    straight = train_policy(bimodal_store, config, tmp_path / "straight")
    assert resumed.step == straight.step == 20
    for key, value in straight.policy.state_dict().items():
        torch.testing.assert_close(resumed.policy.state_dict()[key], value, msg=key)
