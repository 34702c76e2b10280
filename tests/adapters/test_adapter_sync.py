"""The diffusers adapter's sampling loop reads nothing from the device, plain or steered, and a bad guidance
answer is reported after the loop with the same message as fiper's own samplers give.

Reads are counted on the CPU by wrapping the tensor methods that bring values to the host
(tests/interventions/sync_counter.py); each read before or after the loop is named below.
"""

from __future__ import annotations

import copy

import pytest
import torch
from adapter_helpers import fiper_as_diffusers
from interventions.sync_counter import HostRead, count_host_reads, cuda_syncs, reads_at_each_step

from fiper.interventions import KeepOut, Steering
from fiper.protocol import GuidanceResult, finite_on_host

B = 8
ADAPTER = "fiper/adapters/diffusers_policy.py"
# Before the loop: the host check of a CPU embedding and the host copy of the scheduler's timesteps.
BEFORE = [HostRead("__bool__", "fiper/protocol.py", "finite_on_host"), HostRead("tolist", ADAPTER, "sample")]


@pytest.fixture(scope="module")
def adapter(toy_policy):
    return fiper_as_diffusers(toy_policy, "ddpm")


def embedding(adapter):
    return adapter.encode({"agent_pos": torch.zeros(1, adapter.n_obs_steps, 2)})


def test_a_plain_sample_reads_nothing_inside_the_loop(adapter):
    z = embedding(adapter)
    with count_host_reads() as calls, reads_at_each_step(adapter, calls, "_net") as marks:
        chunks = adapter.sample(z, B, generator=torch.Generator().manual_seed(0))
    assert len(marks) == adapter.num_inference_steps == 10
    assert marks == [len(BEFORE)] * len(marks)  # nothing between the first and the last step
    assert calls == BEFORE  # and no guidance: nothing to read after it
    assert chunks.shape == (1, B, adapter.horizon, 2) and torch.isfinite(chunks).all()


def test_a_steered_sample_reads_nothing_inside_the_loop(adapter):
    steering = Steering(KeepOut([0.7, 0.0], radius=0.3), num_particles=B, fk_every=1, fk_lambda=50.0,
                        repulsion_until=0.5, seed=0)
    z = embedding(adapter)
    with count_host_reads() as calls, reads_at_each_step(adapter, calls, "_net") as marks:
        out = steering.steer(adapter, z)
    steps = adapter.num_inference_steps
    # Before the loop the guidance state's noise scale of every step is read off the scheduler's (host) schedule.
    before = BEFORE + [HostRead("__float__", "fiper/adapters/schedulers.py", "noise_scale")] * steps
    assert marks == [len(before)] * steps
    # After it: the adapter's one read of the hook's value checks, and steer's one read.
    assert calls == before + [HostRead("tolist", "fiper/guidance_checks.py", "raise_first_fault"),
                              HostRead("cpu", "fiper/interventions/steering.py", "steer"),
                              HostRead("numpy", "fiper/interventions/steering.py", "steer")]
    assert torch.isfinite(out.samples).all() and steering.last_run["resamples"] >= 1  # the loop did resample


def bad_at(step: int, answer):
    """A hook that answers well (no push, identity indices) except at ``step``, where it answers ``answer(state)``."""
    def hook(state):
        if state.step == step:
            return answer(state)
        n, b = state.x.shape[:2]
        return GuidanceResult(direction=torch.zeros_like(state.x), indices=torch.arange(b).expand(n, b))
    return hook


BAD = {
    "index out of range": (lambda s: GuidanceResult(indices=torch.full(s.x.shape[:2], 8)),
                           r"guidance indices must be integers in \[0, 8\), some are out of range \(sampling step 3\)"),
    "negative index": (lambda s: GuidanceResult(indices=torch.full(s.x.shape[:2], -1)),
                       r"guidance indices must be integers in \[0, 8\), some are out of range \(sampling step 3\)"),
    "non-finite direction": (lambda s: torch.full_like(s.x, float("nan")),
                             r"guidance direction contains NaN or inf values \(sampling step 3\); return a finite direction"),
    "wrong direction shape": (lambda s: torch.zeros(1, 8, 2),
                              r"guidance direction has shape \(1, 8, 2\), expected \(N, B, H, A\) = \(1, 8, 8, 2\) \(sampling step 3\)"),
    "float indices": (lambda s: GuidanceResult(indices=torch.zeros(s.x.shape[:2])),
                      r"guidance indices must be integers in \[0, 8\) of shape \(1, 8\), got torch.float32 \(1, 8\) \(sampling step 3\)"),
}


@pytest.mark.parametrize("fault", sorted(BAD))
def test_a_bad_answer_fails_naming_its_step_alike_for_both_policies(toy_policy, adapter, fault):
    answer, message = BAD[fault]
    errors = []
    for policy in (toy_policy, adapter):
        z = embedding(adapter)
        with pytest.raises(ValueError, match=message) as caught:
            policy.sample(z, B, generator=torch.Generator().manual_seed(0), guidance=bad_at(3, answer))
        errors.append(str(caught.value))
    assert errors[0] == errors[1]


def test_the_first_bad_step_is_the_one_named(adapter):
    """Faults at steps 2 and 5: the error after the loop names step 2."""
    def hook(state):
        if state.step in (2, 5):
            return torch.full_like(state.x, float("inf"))
        return None
    with pytest.raises(ValueError, match=r"NaN or inf values \(sampling step 2\)"):
        adapter.sample(embedding(adapter), B, guidance=hook)


def test_an_out_of_range_index_never_reaches_the_indexing(adapter):
    """Inside the loop a bad index is clamped (no IndexError, no device fault), and only the flag reports it."""
    seen = []

    def hook(state):
        seen.append(state.x0.clone())
        n, b = state.x.shape[:2]
        return GuidanceResult(indices=torch.full((n, b), 10 ** 6)) if state.step == 0 else None
    with pytest.raises(ValueError, match=r"out of range \(sampling step 0\)"):
        adapter.sample(embedding(adapter), B, guidance=hook)
    assert len(seen) == adapter.num_inference_steps and all(torch.isfinite(x).all() for x in seen)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_the_adapters_loop_never_synchronises(toy_policy):
    adapter = fiper_as_diffusers(copy.deepcopy(toy_policy).to("cuda"), "ddpm")
    z = adapter.encode({"agent_pos": torch.zeros(1, adapter.n_obs_steps, 2, device="cuda")})
    steering = Steering(KeepOut([0.7, 0.0], radius=0.3), num_particles=B, fk_every=1, fk_lambda=50.0,
                        repulsion_until=0.5, seed=0)
    g = torch.Generator(device="cuda")
    steering.steer(adapter, z, generator=g.manual_seed(0))  # warm-up: lazy CUDA initialisation is not part of a decision
    total, marks = cuda_syncs(lambda: adapter.sample(z, B, generator=g.manual_seed(0)), adapter, "_net")
    assert marks == [0] * adapter.num_inference_steps and total == 0
    total, marks = cuda_syncs(lambda: steering.steer(adapter, z, generator=g.manual_seed(0)), adapter, "_net")
    assert marks == [0] * adapter.num_inference_steps
    assert total == 2  # after the loop: the adapter's read of the hook's checks and steer's one read


def test_input_values_are_checked_only_where_they_are_on_the_host():
    nan = torch.tensor([0.0, float("nan")])
    assert not finite_on_host(nan) and finite_on_host(torch.tensor([0.0, 1.0])) and finite_on_host(torch.tensor([1, 2]))
    with count_host_reads() as calls:
        assert finite_on_host(nan.to("meta"))  # not on the host: not read (on a GPU that read would be a synchronisation)
    assert calls == []
