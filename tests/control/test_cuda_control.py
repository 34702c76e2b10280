"""On a CUDA machine: MonitoredPolicy with its policy and monitor on the GPU, in the MuJoCo push-T loop.

Reuses the module fixture and helpers of test_control_loop.py (a tiny push-T diffusion policy trained
for 40 steps and an RND-OE + ACE monitor fitted on its replays), reloads the policy on the GPU and
checks: act() and CUDA-event phase timing, live GPU scores against the CPU monitor's offline scores,
steering on the GPU (hook equal to the CPU hook within float32 round-off), and a fallback on an
injected alarm, also one that answers with GPU tensors.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from loop_setup import B, alarm_from, context, make_env
from loop_setup import setup as control_setup  # noqa: F401  (module fixture: policy dir + fitted monitor)

from fiper.control import MonitoredPolicy
from fiper.interventions import GradedResponse, HoldPosition, KeepOut, Steering
from fiper.monitor import load_monitor, save_monitor
from fiper.protocol import GuidanceState
from policies import load_policy

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

DEVICE = torch.device("cuda")
PHASES = ("encode", "sample", "monitor", "intervention")


@pytest.fixture(scope="module")
def gpu(control_setup, tmp_path_factory):  # noqa: F811
    """(policy, monitor) on the GPU, and a CPU copy of that monitor saved from its GPU tensors."""
    root, _, monitor = control_setup
    policy = load_policy(root / "policy", device=str(DEVICE))
    monitor.to(policy.device)
    directory = save_monitor(monitor, tmp_path_factory.mktemp("gpu_monitor"))
    return policy, monitor, load_monitor(directory, device="cpu")


def check_action(action, policy) -> None:
    assert isinstance(action, np.ndarray) and action.dtype == np.float64
    assert action.shape == (policy.action_dim,) and np.isfinite(action).all()


def test_act_on_the_gpu_times_phases_with_cuda_events_and_scores_like_the_cpu(gpu):
    policy, monitor, cpu_monitor = gpu
    agent = MonitoredPolicy(policy, monitor, num_samples=B)
    assert agent.timer.cuda and agent.generator.device.type == DEVICE.type
    assert all(score.device.type == "cpu" for score in monitor.scores.values())  # scored on the host from one copy
    env = make_env(terminate=False)
    obs, _ = env.reset(seed=1)
    agent.reset(seed=1)
    walls = []
    for _ in range(3 * policy.n_action_steps):
        start = time.perf_counter()
        action = agent.act(obs)
        wall_ms = (time.perf_counter() - start) * 1e3
        if agent.last_info["decision"]:
            walls.append(wall_ms)
            assert all(isinstance(mark[0], torch.cuda.Event) for _, mark in agent.timer._marks)
        check_action(action, policy)
        obs, *_ = env.step(action)
    decisions = agent.decisions
    assert len(decisions) == len(walls) == 3
    for d, wall_ms in zip(decisions, walls):
        assert d.embedding.shape == (policy.embedding_dim,) and d.samples.shape == (B, policy.horizon, policy.action_dim)
        assert d.samples.dtype == np.float32 and np.isfinite(d.samples).all()
        np.testing.assert_array_equal(d.executed, d.samples[0])  # execute='first'
        t = d.timing_ms
        assert set(t) == {*PHASES, "total"} and all(np.isfinite(v) and v >= 0 for v in t.values())
        assert t["total"] == pytest.approx(sum(t[p] for p in PHASES))
        # GPU-timeline phases lie inside the host call that ran them (0.5 ms for the two clocks)
        assert 0 < t["total"] <= wall_ms + 0.5
        assert d.verdict is not None and not d.verdict.failsafe and set(d.verdict.scores) == set(monitor.names)
    # The GPU monitor's live scores equal the CPU copy's offline scores of the same (host-copied) decisions.
    emb, smp = np.stack([d.embedding for d in decisions]), np.stack([d.samples for d in decisions])
    offline = cpu_monitor.score_offline(emb, smp, [len(decisions)])
    for name in monitor.names:
        np.testing.assert_allclose([d.verdict.scores[name] for d in decisions], offline[name], rtol=1e-4, atol=1e-6, err_msg=name)


def test_steering_on_the_gpu_returns_finite_chunks_there_and_the_hook_matches_the_cpu(gpu):
    policy, monitor, _ = gpu
    env = make_env(terminate=False)
    obs, _ = env.reset(seed=2)
    center = [float(v) for v in obs["agent_pos"][:2]]  # the chunks start here: the keep-out reward bites
    steering = Steering(KeepOut(center, radius=0.05), num_particles=B, fk_every=2, seed=0)
    agent = MonitoredPolicy(policy, alarm_from(monitor, 0), num_samples=B, response=GradedResponse(steering=steering))
    agent.reset(seed=2)
    check_action(agent.act(obs), policy)
    assert agent.last_info["intervention"] == "steer" and agent.decisions[0].steered
    assert np.isfinite(agent.decisions[0].executed).all()

    z = policy.encode(agent.history.tensors(policy.device))
    out = steering.steer(policy, z, generator=torch.Generator(device=policy.device).manual_seed(0))
    assert out.chunk.shape == (1, policy.horizon, policy.action_dim) and out.samples.shape == (1, B, policy.horizon, policy.action_dim)
    assert out.rewards.shape == (1, B)
    assert {t.device.type for t in out} == {DEVICE.type}
    assert torch.isfinite(out.samples).all() and torch.isfinite(out.rewards).all()
    assert (out.rewards <= 0).all() and out.rewards.max() > out.rewards.min()  # penalties that tell particles apart
    assert torch.equal(out.chunk[0], out.samples[0, out.rewards[0].argmax()])

    # The hook alone on one GuidanceState, on each device (no resampling: its random streams differ).
    x0 = torch.tensor(center) + 0.05 * torch.randn(2, B, policy.horizon, policy.action_dim, generator=torch.Generator().manual_seed(0))

    def direction(device: torch.device) -> torch.Tensor:
        hook = Steering(KeepOut(center, radius=0.05), num_particles=B, fk_every=0, repulsion_until=1.0, adaptive_strength=False)
        state = GuidanceState(x=torch.zeros_like(x0, device=device), x0=x0.to(device), step=0, n_steps=8, progress=1 / 8, kind=policy.kind,
                              noise_scale=1.0, action_scale=policy.normalizer.action.scale.to(device))
        return hook(state).direction

    on_gpu, on_cpu = direction(DEVICE), direction(torch.device("cpu"))
    assert on_gpu.device.type == DEVICE.type and torch.isfinite(on_gpu).all() and on_gpu.abs().max() > 0.1
    torch.testing.assert_close(on_gpu.cpu(), on_cpu, atol=1e-5, rtol=1e-4)
    # Feynman-Kac resampling draws from a seeded generator on the GPU.
    resampler = Steering(KeepOut(center, radius=0.05), num_particles=B, fk_every=1, fk_lambda=1e3, seed=0)
    result = resampler(GuidanceState(x=torch.zeros_like(x0, device=DEVICE), x0=x0.to(DEVICE), step=0, n_steps=8, progress=1 / 8,
                                     kind=policy.kind, noise_scale=1.0, action_scale=policy.normalizer.action.scale))
    assert resampler.last_run["resamples"] == 1 and result.indices.device.type == DEVICE.type
    assert result.indices.shape == (2, B) and int(result.indices.min()) >= 0 and int(result.indices.max()) < B


class GpuHold(HoldPosition):
    """HoldPosition answering with a tensor on the GPU, as a learned recovery policy would."""

    def act(self, obs, context):
        return torch.as_tensor(super().act(obs, context), device=DEVICE)


@pytest.mark.parametrize("fallback", [HoldPosition, GpuHold])
def test_fallback_fires_on_an_injected_alarm_with_the_policy_on_the_gpu(gpu, fallback):
    policy, monitor, _ = gpu
    agent = MonitoredPolicy(policy, alarm_from(monitor, 2), num_samples=B, context=context(policy),
                            response=GradedResponse(fallback=fallback()))
    env = make_env(terminate=False)
    obs, _ = env.reset(seed=3)
    agent.reset(seed=3)
    actions, positions, infos = [], [], []
    for _ in range(30):
        actions.append(agent.act(obs))
        check_action(actions[-1], policy)
        obs, *_ = env.step(actions[-1])
        infos.append(agent.last_info)
        positions.append(obs["agent_pos"][:2].copy())
    start = next(i for i, info in enumerate(infos) if info["fallback_active"])
    assert start == 2 * policy.n_action_steps  # third decision: alarm -> fallback
    assert infos[start]["intervention"] == "fallback:hold" and infos[start]["alarm"]
    assert np.isnan(agent.decisions[-1].executed).all() and len(agent.decisions) == 3
    np.testing.assert_array_equal(np.array(actions[start:]), np.broadcast_to(actions[start], (30 - start, policy.action_dim)))
    held = np.array(positions[start + 2:])
    assert np.max(np.linalg.norm(held - held[0], axis=1)) < 2e-3  # stays put (m)
