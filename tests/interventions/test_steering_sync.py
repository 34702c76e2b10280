"""Host synchronisations: none inside a steered sampling loop, one device read per plain monitored decision.

On a CPU the reads are counted by wrapping the tensor methods that bring values to the host
(sync_counter.py); every tensor lives on the host there, so a few checks of host data show up too,
and each is named below. On CUDA the same budget is checked with torch.cuda's sync debug mode.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sync_counter import HostRead, count_host_reads, cuda_syncs, reads_at_each_step

from fiper.control import MonitoredPolicy
from fiper.interventions import FallbackContext, GradedResponse, KeepOut, Reach, Steering
from fiper.interventions.velocity_path import velocity_frame
from fiper.monitor import PolicyIdentity
from fiper.monitor.fitting import fit_monitor
from fiper.scores.base import ScoreFitData
from policies import build_policy
from policies.toy_data import toy_policy_config

B = 8
OBS = {"agent_pos": (2,)}
# After the loop: the policy's one read of the hook's value checks, and steer's one read of its
# finiteness flags and the executed chunk's rewards. Before it, sample() checks a CPU embedding on
# the host (skipped for an embedding on a device, where it would be a synchronisation).
STEER_READS = [HostRead("__bool__", "fiper/protocol.py", "finite_on_host"),
               HostRead("tolist", "fiper/guidance_checks.py", "raise_first_fault"),
               HostRead("cpu", "fiper/interventions/steering.py", "steer"),
               HostRead("numpy", "fiper/interventions/steering.py", "steer")]


def make_policy(kind: str, device: str = "cpu"):
    torch.manual_seed(0)
    policy = build_policy(toy_policy_config(kind, "mlp"), OBS, 2).eval().to(device)
    rng = np.random.default_rng(0)
    policy.fit_normalizer({"agent_pos": rng.uniform(-1, 1, (200, 2)).astype(np.float32)}, rng.uniform(-1, 1, (200, 2)).astype(np.float32))
    return policy


def make_monitor(policy):
    """RND-OE + ACE fitted and calibrated on the untrained policy's own decisions (seconds)."""
    device = policy.device
    obs = {"agent_pos": torch.rand(100, policy.n_obs_steps, 2, generator=torch.Generator().manual_seed(1)).to(device) * 2 - 1}
    z = policy.encode(obs)
    samples = policy.sample(z, B, generator=torch.Generator(device=device).manual_seed(1))
    ends = np.arange(10, 101, 10)
    scores = {"rnd_oe": {"score": "rnd_oe", "train": {"max_epochs": 2}}, "ace": {"score": "ace", "dims": [0, 1]}}
    monitor = fit_monitor(ScoreFitData(z, samples, ends, device=device), PolicyIdentity.of(policy, B), scores=scores)
    monitor.calibrate(monitor.score_offline(z, samples, ends), ends, delta=0.1)
    return monitor


def observation(i: int) -> dict[str, np.ndarray]:
    return {"agent_pos": np.array([0.1 * i, -0.2], np.float32)}


@pytest.mark.parametrize("kind", ["diffusion", "flow"])
@pytest.mark.parametrize("reward", ["closed_form", "autograd"])
@pytest.mark.parametrize("velocity", [False, True])
def test_a_steered_sample_reads_nothing_from_the_device_inside_its_loop(kind, reward, velocity):
    policy = make_policy(kind)
    program = KeepOut([0.0, 0.0], radius=0.3) if reward == "closed_form" else Reach([0.5, 0.5])
    steering = Steering(program, num_particles=B, fk_every=1, fk_lambda=50.0, repulsion_until=0.5, seed=0,
                        velocity_actions=velocity)
    z = policy.encode({"agent_pos": torch.zeros(1, policy.n_obs_steps, 2)})
    # velocity actions: the paths start at a measured position, copied to the device once before sampling
    frame = {"frame": velocity_frame(FallbackContext(2, [0, 1], action_mode="velocity", control_period_s=0.1),
                                     observation(1), policy.device)} if velocity else {}
    with count_host_reads() as calls, reads_at_each_step(policy, calls) as marks:
        out = steering.steer(policy, z, **frame)
    assert len(marks) == policy.config.num_inference_steps
    assert marks == [1] * len(marks)  # only the embedding check before step 0, nothing between steps
    assert calls == STEER_READS
    assert torch.isfinite(out.samples).all() and steering.last_run["resamples"] >= 1  # the loop did resample


def test_a_plain_monitored_decision_reads_the_device_once():
    policy = make_policy("flow")
    monitor = make_monitor(policy)
    agent = MonitoredPolicy(policy, monitor, num_samples=B)
    assert all(score.device.type == "cpu" for score in monitor.scores.values())  # the monitor scores host copies
    agent.act(observation(0))
    agent.queue.clear()
    with count_host_reads() as calls:
        agent.act(observation(1))
    device_side = [c for c in calls if not c.file.startswith(("fiper/monitor/", "fiper/scores/"))]
    assert agent.last_info["decision"] and not agent.last_info["failsafe"]
    # The observation and the embedding are checked on the host before their upload (host data, no device
    # involved); the one device read is the packed copy of chunk, embedding and batch.
    assert device_side == [HostRead("__bool__", "fiper/protocol.py", "finite_on_host"),
                           HostRead("__bool__", "fiper/protocol.py", "finite_on_host"),
                           HostRead("cpu", "fiper/control/monitored_policy.py", "_host_copy"),
                           HostRead("numpy", "fiper/control/monitored_policy.py", "_host_copy")]
    d = agent.decisions[-1]
    np.testing.assert_array_equal(d.executed, d.samples[0])  # the copy's parts land where they belong


def test_the_counter_sees_a_read_inside_the_loop():
    """A hook that reads one value per step is caught at every step (the count can fail)."""
    policy = make_policy("flow")
    z = policy.encode({"agent_pos": torch.zeros(1, policy.n_obs_steps, 2)})
    with count_host_reads() as calls, reads_at_each_step(policy, calls) as marks:
        policy.sample(z, B, guidance=lambda state: None if float(state.x0.abs().max()) > 0 else None)
    assert marks == list(range(1, 1 + len(marks)))
    assert calls.count(HostRead("__float__", "tests/interventions/test_steering_sync.py", "<lambda>")) == len(marks)


# ---------------------------------------------------------------- CUDA: the same budget, counted by torch
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@cuda
@pytest.mark.parametrize("kind", ["diffusion", "flow"])
@pytest.mark.parametrize("velocity", [False, True])
def test_cuda_a_steered_loop_never_synchronises(kind, velocity):
    policy = make_policy(kind, "cuda")
    steering = Steering(KeepOut([0.0, 0.0], radius=0.3), num_particles=B, fk_every=1, fk_lambda=50.0, repulsion_until=0.5, seed=0,
                        velocity_actions=velocity)
    z = policy.encode({"agent_pos": torch.zeros(1, policy.n_obs_steps, 2)})
    context = FallbackContext(2, [0, 1], action_mode="velocity", control_period_s=0.1)

    def steer():  # velocity actions: each decision copies its measured start to the device before sampling
        return steering.steer(policy, z, **({"frame": velocity_frame(context, observation(1), policy.device)} if velocity else {}))

    steer()  # warm-up: lazy CUDA initialisation is not part of a decision
    total, marks = cuda_syncs(steer, policy)
    assert marks == [0] * policy.config.num_inference_steps  # nothing before or inside the loop
    assert total == 2  # after it: the policy's read of the hook's checks and steer's one read


@cuda
def test_cuda_a_plain_monitored_decision_synchronises_once():
    policy = make_policy("flow", "cuda")
    agent = MonitoredPolicy(policy, make_monitor(policy), num_samples=B)
    agent.act(observation(0))
    agent.queue.clear()
    total, marks = cuda_syncs(lambda: agent.act(observation(1)), policy)
    assert total == 1 and marks == [0] * policy.config.num_inference_steps  # the packed copy after sampling
    assert agent.last_info["decision"] and not agent.last_info["failsafe"]
