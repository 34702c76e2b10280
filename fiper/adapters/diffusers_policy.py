"""A GenerativePolicy built from the parts diffusion_policy and lerobot build their diffusion policies from.

    obs ─► normalize_obs ─► encoder ─► z (N, D)                        encode(): the global conditioning vector
    z ─► noise (N·B, H, A) ─► for t in scheduler.timesteps:           sample(): one batched loop over N·B
              out = net(x, t, global_cond=z)    (eps or x0 prediction)
              [guidance reads the scheduler's pred_original_sample, moves it by a direction]
              x = scheduler.step(out, t, x, generator=g).prev_sample
         ─► unnormalize_action ─► drop the first chunk_offset steps ─► (N, B, H - chunk_offset, A)

``chunk_offset``: diffusion_policy and lerobot predict a chunk that starts at the first observation
step and execute from ``n_obs_steps - 1`` on; fiper's chunks start at the current step, so the
adapter drops those first steps (``chunk_offset=n_obs_steps - 1``) and exposes the rest.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from fiper.adapters.schedulers import (check_scheduler, clean_estimate, default_inference_steps, guided_output,
                                       noise_scale)
from fiper.guidance_checks import guidance_answer, raise_first_fault, reindex
from fiper.protocol import Guidance, GuidanceState, check_embedding, check_observation, finite_on_host


def _positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}={value!r} must be an integer >= {minimum}")
    return int(value)


def _device_of(*parts: Any) -> torch.device:
    for part in parts:
        if isinstance(part, nn.Module):
            for p in part.parameters():
                return p.device
    return torch.device("cpu")


def _identity(x: Any) -> Any:
    return x


class DiffusersPolicy:
    """fiper's GenerativePolicy around an observation encoder, a conditional noise-prediction network
    ``net(sample, timestep, global_cond=...)``, a diffusers noise scheduler and a normaliser.

    ``horizon`` is the net's predicted length; the policy exposes ``horizon - chunk_offset`` steps.
    ``normalize_obs`` maps ``{key: (N, n_obs_steps, *shape)}`` to what ``encoder`` reads (None: as is);
    ``unnormalize_action`` maps normalised chunks (M, horizon, A) to environment units (None: as is)
    and must be affine per action dimension (min/max or mean/std), else pass ``action_scale``.
    ``cond_arg`` names the net's conditioning keyword (None: passed third, positionally).
    ``step_kwargs`` go to every ``scheduler.step`` (e.g. ``{"eta": 0.0}`` for DDIM).
    ``identity_modules`` are extra modules whose weights identify the policy in fingerprints (the
    source policy object, when ``encoder`` is a plain function).
    """

    kind = "diffusion"

    def __init__(self, *, encoder: Callable[[Any], Tensor], net: Callable[..., Tensor], scheduler: Any,
                 obs_shapes: Mapping[str, Sequence[int]], horizon: int, n_action_steps: int, n_obs_steps: int,
                 action_dim: int, embedding_dim: int, normalize_obs: Callable[[dict[str, Tensor]], Any] | None = None,
                 unnormalize_action: Callable[[Tensor], Tensor] | None = None, num_inference_steps: int | None = None,
                 chunk_offset: int = 0, step_kwargs: Mapping[str, Any] | None = None, cond_arg: str | None = "global_cond",
                 action_scale: Sequence[float] | Tensor | None = None, identity_modules: Sequence[nn.Module] = (),
                 device: torch.device | str | None = None):
        self.prediction_type = check_scheduler(scheduler)
        if not obs_shapes:
            raise ValueError("obs_shapes is empty: give {key: per-step shape} for every observation the encoder reads")
        self.encoder, self.net, self.scheduler = encoder, net, scheduler
        self.normalize_obs = normalize_obs or _identity
        self.unnormalize_action = unnormalize_action or _identity
        self.obs_shapes = {str(k): tuple(int(d) for d in s) for k, s in obs_shapes.items()}
        self.model_horizon = _positive_int("horizon", horizon)
        self.chunk_offset = _positive_int("chunk_offset", chunk_offset, 0)
        if self.chunk_offset >= self.model_horizon:
            raise ValueError(f"chunk_offset={chunk_offset} must be below horizon={horizon} (lerobot and diffusion_policy: n_obs_steps - 1)")
        self.horizon = self.model_horizon - self.chunk_offset
        self.n_obs_steps = _positive_int("n_obs_steps", n_obs_steps)
        self.n_action_steps = _positive_int("n_action_steps", n_action_steps)
        if self.n_action_steps > self.horizon:
            raise ValueError(f"n_action_steps={n_action_steps} exceeds the exposed horizon {self.horizon} "
                             f"(= horizon {horizon} - chunk_offset {chunk_offset})")
        self.action_dim = _positive_int("action_dim", action_dim)
        self.embedding_dim = _positive_int("embedding_dim", embedding_dim)
        steps = default_inference_steps(scheduler) if num_inference_steps is None else num_inference_steps
        self.num_inference_steps = _positive_int("num_inference_steps", steps)
        self.step_kwargs = dict(step_kwargs or {})
        self.cond_arg = cond_arg
        self.identity_modules = tuple(identity_modules)
        self.device = torch.device(device) if device is not None else _device_of(net, encoder)
        self.action_scale = self._action_scale(action_scale)

    # ------------------------------------------------------------------ protocol
    def reset(self) -> None:
        """Stateless: the observation history arrives with every call."""

    @torch.no_grad()
    def encode(self, obs: Mapping[str, Tensor]) -> Tensor:
        """Observation history {key: (N, n_obs_steps, *shape)} -> the net's global conditioning vector (N, D)."""
        checked = self._check_obs(obs)
        z = torch.as_tensor(self.encoder(self.normalize_obs(checked)))
        n = next(iter(checked.values())).shape[0]
        if tuple(z.shape) != (n, self.embedding_dim):
            raise ValueError(f"the encoder returned shape {tuple(z.shape)}, expected (N, D) = ({n}, {self.embedding_dim}): "
                             "it must flatten the observation history into one global conditioning vector per observation")
        if not finite_on_host(z):
            raise ValueError("the encoder returned NaN or inf values")
        return z.to(self.device, torch.float32)

    @torch.no_grad()
    def sample(self, embedding: Tensor, num_samples: int, *, generator: torch.Generator | None = None,
               guidance: Guidance | None = None) -> Tensor:
        """``num_samples`` chunks per embedding in one batched loop: (N, B, H, A) in environment units."""
        cond = check_embedding(embedding, self.embedding_dim, self.device)
        b = _positive_int("num_samples", num_samples)
        if generator is not None and generator.device.type != self.device.type:
            raise ValueError(f"generator is on {generator.device} but the policy is on {self.device}; "
                             "create it with torch.Generator(device=policy.device)")
        n, h, a = cond.shape[0], self.model_horizon, self.action_dim
        x = torch.randn((n, b, h, a), generator=generator, device=self.device).reshape(n * b, h, a)
        cond = cond.repeat_interleave(b, dim=0)
        self.scheduler.set_timesteps(self.num_inference_steps)
        # Host numbers read before the loop, so that the loop itself never reads a tensor.
        timesteps = [int(t) for t in self.scheduler.timesteps.tolist()]
        scales = [noise_scale(self.scheduler, t) for t in timesteps] if guidance is not None else []
        checks: list = []
        for i, t in enumerate(timesteps):
            out = self._net(x, t, cond)
            if guidance is not None:
                x, out = self._guide(guidance, x, out, t, i, scales, (n, b), checks)
            x = self.scheduler.step(out, t, x, generator=generator, **self.step_kwargs).prev_sample
        raise_first_fault(checks)  # the loop never waits for the device; this is its one read
        chunks = self._unnormalize(x).reshape(n, b, h, a)
        return chunks[:, :, self.chunk_offset:].detach()

    # ------------------------------------------------------------------ identity
    def fingerprint(self) -> str:
        """sha256 of the weights of every module part, the scheduler config and the sampling settings (stable across processes)."""
        h = hashlib.sha256(f"{type(self).__module__}.{type(self).__qualname__}".encode())
        parts = [self.encoder, self.net, self.normalize_obs, self.unnormalize_action, *self.identity_modules]
        modules = [getattr(p, "__self__", p) for p in parts]
        seen: set[int] = set()
        for i, module in enumerate(modules):
            if not isinstance(module, nn.Module) or id(module) in seen:
                continue
            seen.add(id(module))
            for name, tensor in sorted(module.state_dict().items()):
                t = tensor.detach().to("cpu").contiguous()
                h.update(f"\x00{i}.{name}:{t.dtype}:{tuple(t.shape)}".encode())
                h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        zero = self._unnormalize(torch.zeros(1, 1, self.action_dim, device=self.device)).reshape(-1)
        # diffusers' bookkeeping keys (``_use_default_values`` is listed in set order, which changes from one
        # process to the next) are left out, so the same weights give the same fingerprint in every process.
        config = {k: v for k, v in dict(self.scheduler.config).items() if not str(k).startswith("_")}
        settings = {"scheduler": type(self.scheduler).__name__, "config": config,
                    "num_inference_steps": self.num_inference_steps, "chunk_offset": self.chunk_offset,
                    "step_kwargs": self.step_kwargs, "obs_shapes": self.obs_shapes, "horizon": self.model_horizon,
                    "action_center": zero.tolist(), "action_scale": self.action_scale.tolist()}
        h.update(json.dumps(settings, sort_keys=True, default=str).encode())
        return h.hexdigest()

    # ------------------------------------------------------------------ internals
    def _net(self, x: Tensor, t: int, cond: Tensor) -> Tensor:
        ts = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
        out = self.net(x, ts, cond) if self.cond_arg is None else self.net(x, ts, **{self.cond_arg: cond})
        if out.shape != x.shape:
            raise ValueError(f"the net returned shape {tuple(out.shape)} for samples {tuple(x.shape)}; it must predict "
                             "the noise (or the clean chunk) of the same shape (M, horizon, action_dim)")
        return out

    def _unnormalize(self, x: Tensor) -> Tensor:
        return torch.as_tensor(self.unnormalize_action(x)).to(self.device, torch.float32)

    def _action_scale(self, given: Sequence[float] | Tensor | None) -> Tensor:
        """d env / d normalised per action dim: given, or read off the affine unnormaliser."""
        if given is not None:
            scale = torch.as_tensor(given, dtype=torch.float32, device=self.device).reshape(-1)
        else:
            with torch.no_grad():
                probe = torch.arange(3, dtype=torch.float32, device=self.device)[:, None, None].expand(3, 1, self.action_dim)
                env = self._unnormalize(probe.contiguous()).reshape(3, self.action_dim)
            scale = env[1] - env[0]
            if not torch.allclose(env[2] - env[1], scale, rtol=1e-4, atol=1e-6):
                raise ValueError("unnormalize_action is not affine per action dimension, so the action scale guidance needs "
                                 "cannot be read off it; pass action_scale=[d env / d normalised per action dim]")
        if scale.shape != (self.action_dim,) or not torch.isfinite(scale).all() or (scale == 0).any():
            raise ValueError(f"action_scale must hold {self.action_dim} finite non-zero values (d env / d normalised), got {scale.tolist()}")
        return scale

    def _check_obs(self, obs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return check_observation(obs, self.obs_shapes, self.n_obs_steps, self.device)

    def _guide(self, guidance: Guidance, x: Tensor, out: Tensor, t: int, step: int, scales: list[float],
               nb: tuple[int, int], checks: list) -> tuple[Tensor, Tensor]:
        """Show the hook the exposed part of the scheduler's clean estimate; apply its re-indexing and direction.

        The answer is checked by :func:`fiper.guidance_checks.guidance_answer` (value checks become device
        flags in ``checks``, read once after the loop), as in fiper's own samplers.
        """
        n, b = nb
        full = (n, b, self.model_horizon, self.action_dim)
        off = self.chunk_offset
        x0 = self._unnormalize(clean_estimate(self.scheduler, out, t, x)).reshape(full)[:, :, off:]
        state = GuidanceState(x=x.reshape(full)[:, :, off:], x0=x0.detach(), step=step, n_steps=len(scales),
                              progress=(step + 1) / len(scales), kind=self.kind, noise_scale=scales[step],
                              action_scale=self.action_scale)
        indices, direction = guidance_answer(guidance(state), (n, b, self.horizon, self.action_dim), x.dtype, x.device,
                                             step, checks)
        x, out = x.reshape(full), out.reshape(full)
        if indices is not None:
            x, out = reindex(indices, x, out)
        if direction is not None:
            out = guided_output(self.scheduler, out, t, nn.functional.pad(direction, (0, 0, off, 0)))
        return x.reshape(n * b, *full[2:]), out.reshape(n * b, *full[2:])
