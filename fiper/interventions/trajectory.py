"""From action chunks to the trajectories reward programs read, and safe loading of user rewards.

``lift_chunks`` picks the position dims of (N, B, H, A) chunks (integrating velocities when the
actions are velocities) and pads planar positions with z = 0, giving (N*B, H, 3).
``CheckedReward`` wraps any reward program so a wrong shape or a NaN fails loudly, naming it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from fiper.interventions.loading import check_call, load_object


def lift_chunks(chunks: Tensor, position_dims: Sequence[int], *, velocity: bool = False,
                start: Tensor | None = None, dt: float = 1.0) -> Tensor:
    """Chunks (..., H, A) -> trajectories (prod(...), H, 3) in env units, differentiably.

    With ``velocity=True`` positions are ``start + dt * cumsum(velocity)``; ``start`` is
    (len(position_dims),) or broadcastable to (..., len(position_dims)), default 0.
    """
    dims = [int(d) for d in position_dims]
    if chunks.ndim < 2:
        raise ValueError(f"chunks must be (..., H, A); got shape {tuple(chunks.shape)}")
    if not 1 <= len(dims) <= 3 or any(not 0 <= d < chunks.shape[-1] for d in dims):
        raise ValueError(
            f"position_dims={dims} is invalid for action_dim={chunks.shape[-1]}: give 1 to 3 indices in range"
        )
    # Consecutive dims are a slice (a view): a list index would copy an index tensor to the device.
    pos = chunks[..., dims[0]:dims[-1] + 1] if dims == list(range(dims[0], dims[0] + len(dims))) else chunks[..., dims]
    if velocity:
        pos = torch.cumsum(pos * dt, dim=-2)
        if start is not None:
            pos = pos + torch.as_tensor(start, dtype=pos.dtype, device=pos.device).unsqueeze(-2)
    pos = F.pad(pos, (0, 3 - len(dims)))
    return pos.reshape(-1, chunks.shape[-2], 3)


class CheckedReward:
    """A reward program whose output is checked: shape (batch,) and finite, else a clear error."""

    def __init__(self, program: Callable[[Tensor], Tensor], name: str | None = None):
        if not callable(program):
            raise TypeError(f"reward {program!r} is not callable: give a function trajectory (batch, steps, 3) -> (batch,)")
        self.program = program
        self.name = name or getattr(program, "__name__", type(program).__name__)
        check_call(program, (None,), {}, f"reward {self.name!r}", "one trajectory tensor (batch, steps, 3) and return (batch,)")

    def named(self, name: str) -> CheckedReward:
        """This reward, called ``name`` in its errors and reports (the import path a config gave)."""
        self.name = str(name)
        return self

    def __call__(self, trajectory: Tensor) -> Tensor:
        out = self.shaped(trajectory)
        if not bool(torch.isfinite(out).all()):
            bad = int((~torch.isfinite(out)).sum())
            raise ValueError(f"reward {self.name!r} returned {bad} non-finite values (NaN/inf); rewards must be finite")
        return out

    def shaped(self, trajectory: Tensor) -> Tensor:
        """The program's output with its type and shape checked but not its values: no host
        synchronisation, for a sampling loop that checks finiteness on the device after the loop."""
        out = self.program(trajectory)
        if not isinstance(out, Tensor):
            raise TypeError(f"reward {self.name!r} returned {type(out).__name__}; it must return a torch tensor (batch,)")
        if out.shape != trajectory.shape[:1]:
            raise ValueError(
                f"reward {self.name!r} returned shape {tuple(out.shape)} for a trajectory batch of shape "
                f"{tuple(trajectory.shape)}; it must return one reward per trajectory, shape ({trajectory.shape[0]},)"
            )
        return out

    def __repr__(self) -> str:
        return f"CheckedReward({self.name})"


def load_reward(spec: str | Callable[[Tensor], Tensor], *, factory: bool | None = None, **kwargs: Any) -> CheckedReward:
    """A user reward from ``"path/to/file.py:name"``, ``"package.module:name"`` or a callable.

    With ``kwargs`` (or ``factory=True``) the named object is a factory called with them to build
    the reward; otherwise it is the reward itself. The result is a :class:`CheckedReward`.
    """
    obj = load_object(spec) if isinstance(spec, str) else spec
    name = spec if isinstance(spec, str) else getattr(obj, "__name__", type(obj).__name__)
    if factory or (factory is None and kwargs):
        if not callable(obj):
            raise TypeError(f"{name!r} is not callable, so it cannot build a reward from {kwargs}")
        check_call(obj, (), kwargs, f"reward factory {name!r}", "these settings and return the reward")
        obj = obj(**kwargs)
    return CheckedReward(obj, name=str(name))


NOT_DIFFERENTIABLE = ("its output does not depend on the trajectory through torch operations, so steering has no "
                      "gradient to follow: compute it from `trajectory` with torch operations (no .detach(), .item(), "
                      ".tolist(), .numpy() or torch.tensor(...) of its values; a yes/no test such as `inside.float()` "
                      "has no gradient either: use a smooth depth, e.g. torch.relu or softplus of the distance)")


def probe_reward(reward: CheckedReward, trajectory: Tensor) -> None:
    """Call ``reward`` once on ``trajectory`` (batch, steps, 3), as steering will: a ValueError naming the program and
    the fix when it raises, returns no tensor of shape (batch,), a non-finite value, or a value without a gradient
    (a program with a closed-form ``value_and_grad`` is asked for both instead)."""
    where = f"reward {reward.name!r}, called once on {trajectory.shape[0]} trajectories {tuple(trajectory.shape)} of " \
            "actions drawn in the env's action space before anything runs"
    closed = getattr(reward.program, "value_and_grad", None)
    try:
        with torch.enable_grad():
            leaf = trajectory.detach().clone().requires_grad_(not callable(closed))
            out = reward(leaf)
            if callable(closed):
                value, grad = closed(leaf)
                if tuple(grad.shape) != tuple(leaf.shape) or not bool(torch.isfinite(grad).all()):
                    raise ValueError(f"its value_and_grad returned a gradient of shape {tuple(grad.shape)} (finite: "
                                     f"{bool(torch.isfinite(grad).all())}); it must be finite, of shape {tuple(leaf.shape)}")
    except Exception as err:  # noqa: BLE001  any failure of a user program is named, with what it was given
        msg = str(err)
        raise ValueError(msg if reward.name in msg else f"{where} raised {type(err).__name__}: {msg}") from err
    if not callable(closed) and not out.requires_grad:
        raise ValueError(f"{where}: {NOT_DIFFERENTIABLE}")
