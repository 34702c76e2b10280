"""A guidance hook's answer, applied on the device without host reads, and checked once after the loop.

Every sampler (fiper's diffusion and flow policies, the diffusers adapter) calls :func:`guidance_answer`
at each step and :func:`raise_first_fault` after its loop, so the answers are held to one set of rules
and the loop never waits for the device: type, shape and dtype are host metadata and are refused at
once; the values (indices in range, a finite direction) become flags on the device, read together.
"""

from __future__ import annotations

from typing import NoReturn

import torch
from torch import Tensor

from fiper.protocol import GuidanceResult

# (sampling step, what is wrong and how to fix it, 0-dim bool tensor on the device: True = wrong)
Check = tuple[int, str, Tensor]


def guidance_answer(out: object, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device | str, step: int,
                    checks: list[Check]) -> tuple[Tensor | None, Tensor | None]:
    """The hook's answer ``out`` for samples of ``shape`` (N, B, H, A): (indices, direction), either None.

    Indices come back as (N, B) long, clamped into [0, B) so nothing indexes out of range; the
    direction as ``shape`` in ``dtype``. A flag per value check is appended to ``checks``.
    """
    if out is None:
        return None, None
    if isinstance(out, Tensor):
        out = GuidanceResult(direction=out)
    if not isinstance(out, GuidanceResult):
        _refuse(checks, TypeError(f"guidance returned {type(out).__name__} (sampling step {step}); "
                                  "return None, a direction tensor (N, B, H, A) or a GuidanceResult"))
    n, b = shape[:2]
    indices = direction = None
    if out.indices is not None:
        idx = torch.as_tensor(out.indices, device=device)
        if tuple(idx.shape) != (n, b) or idx.dtype not in (torch.int32, torch.int64):
            _refuse(checks, ValueError(f"guidance indices must be integers in [0, {b}) of shape {(n, b)}, got {idx.dtype} "
                                       f"{tuple(idx.shape)} (sampling step {step}); return one ancestor index per particle"))
        indices = idx.long().clamp(0, b - 1)
        checks.append((step, f"guidance indices must be integers in [0, {b}), some are out of range (sampling step {step}); "
                             "return indices into the hook's own batch of particles", (indices != idx).any()))
    if out.direction is not None:
        direction = torch.as_tensor(out.direction, device=device, dtype=dtype)
        if tuple(direction.shape) != tuple(shape):
            _refuse(checks, ValueError(f"guidance direction has shape {tuple(direction.shape)}, expected (N, B, H, A) = "
                                       f"{tuple(shape)} (sampling step {step}); return one direction per particle"))
        checks.append((step, f"guidance direction contains NaN or inf values (sampling step {step}); "
                             "return a finite direction (zero where there is no push)", ~torch.isfinite(direction).all()))
    return indices, direction


def reindex(indices: Tensor, *tensors: Tensor) -> tuple[Tensor, ...]:
    """Each (N, B, ...) tensor re-ordered along B by ``indices`` (N, B): particle b takes row indices[n, b]."""
    return tuple(t.gather(1, indices.reshape(*indices.shape, *(1,) * (t.ndim - 2)).expand(t.shape)) for t in tensors)


def raise_first_fault(checks: list[Check]) -> None:
    """After the sampling loop: one copy of all flags to the host; ValueError naming the first failed step."""
    if not checks:
        return
    flags = torch.stack([bad for _, _, bad in checks]).tolist()
    for (_, what, _), bad in zip(checks, flags):
        if bad:
            raise ValueError(what)


def _refuse(checks: list[Check], error: Exception) -> NoReturn:
    """Raise the first earlier value fault if there is one (it came first), else ``error``."""
    raise_first_fault(checks)
    raise error
