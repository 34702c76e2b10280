"""The contract between fiper and any generative action-chunk policy.

fiper never imports a policy implementation: it talks to this protocol. A policy from another
stack joins by an adapter that implements it (see docs/adapters.md).

Time-line of one decision (n_obs_steps=2, horizon=8, n_action_steps=4)::

    obs:      |o-1|o0 |                           <- history fed to encode()
    chunk:        |a0 |a1 |a2 |a3 |a4 |a5 |a6 |a7|  <- sample() predicts H steps from t=0
    executed:     |a0 |a1 |a2 |a3 |               <- n_action_steps, then re-plan
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor


@dataclass
class GuidanceState:
    """What a policy shows its guidance hook at one denoising / integration step.

    ``x`` is the current noisy sample in the policy's normalised action space and ``x0`` the
    policy's current estimate of the clean chunk in environment units, both (N, B, H, A).
    ``x0`` is detached; a reward gradient w.r.t. ``x0`` maps to normalised space by multiplying
    with ``action_scale`` (d env / d normalised, shape (A,)).
    """

    x: Tensor
    x0: Tensor
    step: int  # 0 .. n_steps-1, in sampling order
    n_steps: int
    progress: float  # (step + 1) / n_steps: 0 = pure noise, 1 = clean
    kind: str  # "diffusion" or "flow"
    noise_scale: float  # sqrt(1 - alpha_bar_t) for diffusion, 1.0 for flow
    action_scale: Tensor  # (A,)


@dataclass
class GuidanceResult:
    """A guidance hook's answer: a direction and/or a particle re-indexing.

    ``direction`` (N, B, H, A), in normalised action units, says where the clean chunk should
    move; diffusion policies subtract ``noise_scale * direction`` from their noise prediction,
    flow policies add ``direction`` to their velocity. ``indices`` (N, B) long, if given,
    re-orders the particles (Feynman-Kac resampling) before the update is applied.
    """

    direction: Tensor | None = None
    indices: Tensor | None = None


@runtime_checkable
class Guidance(Protocol):
    """Callable applied at each sampling step; returns a direction tensor, a result, or None."""

    def __call__(self, state: GuidanceState) -> Tensor | GuidanceResult | None: ...


@runtime_checkable
class GenerativePolicy(Protocol):
    """A policy that samples batches of action chunks conditioned on an observation embedding.

    ``obs`` maps each observation key to a tensor (N, n_obs_steps, *shape) with the per-step
    shapes of ``obs_shapes``; ``encode`` returns the exact vector the denoiser is conditioned on.
    ``sample`` draws ``num_samples`` chunks per embedding in one batched call, in environment
    units: (N, B, H, A).
    """

    horizon: int
    n_action_steps: int
    n_obs_steps: int
    action_dim: int
    embedding_dim: int
    obs_shapes: Mapping[str, tuple[int, ...]]
    device: torch.device

    def reset(self) -> None: ...

    def encode(self, obs: Mapping[str, Tensor]) -> Tensor: ...

    def sample(
        self,
        embedding: Tensor,
        num_samples: int,
        *,
        generator: torch.Generator | None = None,
        guidance: Guidance | None = None,
    ) -> Tensor: ...


def finite_on_host(value: Tensor) -> bool:
    """False only for a tensor on the host that holds NaN or inf.

    A tensor on a device is not read: the check would make the host wait once per decision, so
    non-finite values there reach the samples, which MonitoredPolicy's checks turn into the fail-safe.
    """
    if value.device.type != "cpu" or not (value.is_floating_point() or value.is_complex()):
        return True
    return bool(torch.isfinite(value).all())


def output_problem(value: Any, method: str, layout: str, expected: tuple[int, ...], device: Any) -> str:
    """Why the policy's ``method`` output cannot be used (not a floating torch tensor of shape ``expected`` on the
    policy's ``device``), or ''.

    Shape and dtype only: nothing is read from the device."""
    fix = "; make the adapter return it as docs/adapters.md says"
    if not isinstance(value, torch.Tensor):
        kind = f"{type(value).__module__}.{type(value).__qualname__}".removeprefix("builtins.")
        return f"the policy's {method} returned a {kind}, not a torch.Tensor {layout} on policy.device{fix}"
    if tuple(value.shape) != expected:
        shape = tuple(value.shape)
        if method == "sample" and len(expected) > 1 and shape[:1] == (expected[0] * expected[1],) and shape[1:] == expected[2:]:
            hint = " (B folded into N: reshape the N·B chunks to (N, B, H, A))"
        elif len(shape) != len(expected):
            hint = f" (an extra or missing axis: {len(shape)} instead of {len(expected)})"
        else:
            hint = ""
        return f"the policy's {method} returned shape {shape}, expected {layout} = {expected}{hint}{fix}"
    if not value.is_floating_point():
        return f"the policy's {method} returned dtype {value.dtype}, expected a floating-point tensor{fix}"
    want = torch.device(device)
    if value.device.type != want.type or (want.index is not None and value.device.index not in (None, want.index)):
        return f"the policy's {method} returned a tensor on {value.device}, expected policy.device = {want}{fix}"
    return ""


def _differs(a: Tensor, b: Tensor) -> bool:
    """True when two outputs of the same call differ beyond float reduction-order noise (GPU kernels may reorder)."""
    a, b = a.detach().float().cpu(), b.detach().float().cpu()
    return a.shape != b.shape or bool((a - b).abs().max() > 1e-4 * (1.0 + a.abs().max()))


def replay_problem(policy: Any, obs: Mapping[str, Tensor], num_samples: int = 2) -> str:
    """Why replaying ``policy`` on the same observation would not repeat its decision, or ''.

    ``encode`` must be a function of the observation and ``sample`` of its embedding and generator: calibration
    replays, fits on stored observations and the outcome sweep's pairing all rely on it."""
    with torch.no_grad():
        z = policy.encode(obs)
        if _differs(z, policy.encode(obs)):
            return ("the policy's encode returned different embeddings for the same observation: a module left in "
                    "train mode (dropout, batch norm: call .eval()) or noise drawn inside encode; make it deterministic")
        seeded = lambda: torch.Generator(device=policy.device).manual_seed(0)  # noqa: E731
        if _differs(policy.sample(z, num_samples, generator=seeded()), policy.sample(z, num_samples, generator=seeded())):
            return ("the policy's sample returned different chunks for the same embedding and seed: it draws noise "
                    "from the global RNG (or a module in train mode) instead of the generator= it is given; pass "
                    "generator= to every torch.randn / scheduler.step inside sample")
    return ""


def check_observation(obs: Mapping[str, Tensor], obs_shapes: Mapping[str, tuple[int, ...]], n_obs_steps: int,
                      device: torch.device) -> dict[str, Tensor]:
    """Observation tensors {key: (N, n_obs_steps, *shape)} checked against a policy's shapes and moved to
    ``device`` without waiting; TypeError / ValueError name the key and what is wrong (values on the host only)."""
    if not isinstance(obs, Mapping):
        raise TypeError(f"obs must be a mapping {{key: tensor}}, got {type(obs).__name__}")

    def shape_text(shape: tuple[int, ...]) -> str:
        return "(N, " + ", ".join(str(d) for d in (n_obs_steps, *shape)) + ")"

    expected = ", ".join(f"'{k}': {shape_text(s)}" for k, s in obs_shapes.items())
    if set(obs) != set(obs_shapes):
        raise ValueError(f"observation keys {sorted(obs)} do not match the policy's {sorted(obs_shapes)}: missing "
                         f"{[k for k in obs_shapes if k not in obs]}, unknown {[k for k in obs if k not in obs_shapes]}; "
                         f"expected (N, n_obs_steps, *shape) per key: {expected}")
    out, n = {}, None
    for key, shape in obs_shapes.items():
        value = torch.as_tensor(obs[key])
        if tuple(value.shape[1:]) != (n_obs_steps, *shape):
            raise ValueError(f"obs['{key}'] has shape {tuple(value.shape)}, expected (N, n_obs_steps, *shape) = {shape_text(shape)}")
        if n is not None and value.shape[0] != n:
            raise ValueError(f"obs['{key}'] has batch size {value.shape[0]} but other keys have {n}; all keys need the same N")
        n = value.shape[0]
        if not finite_on_host(value):
            raise ValueError(f"obs['{key}'] contains NaN or inf values; the policy cannot act on a non-finite observation")
        out[key] = value.to(device, non_blocking=True)  # no wait for a host-to-device copy
    if n == 0:
        raise ValueError("observations hold N=0 entries; pass at least one")
    return out


def check_embedding(embedding: Tensor, embedding_dim: int, device: torch.device) -> Tensor:
    """An embedding (N, D) as float32 on ``device``; ValueError names a wrong shape or, on the host, NaN/inf."""
    embedding = torch.as_tensor(embedding)
    if embedding.ndim != 2 or embedding.shape[1] != embedding_dim or embedding.shape[0] < 1:
        raise ValueError(f"embedding has shape {tuple(embedding.shape)}, expected (N, D) = (N, {embedding_dim}); "
                         "pass the output of policy.encode(obs)")
    if not finite_on_host(embedding):
        raise ValueError("embedding contains NaN or inf values; pass the output of policy.encode(obs) for a finite observation")
    return embedding.to(device, torch.float32, non_blocking=True)
