"""Differentiable reward programs over predicted end-effector / pusher trajectories.

A reward program is any callable ``trajectory (batch, steps, 3) -> reward (batch,)`` built from
torch operations, so steering can take its gradient. Positions are in environment units; planar
(2-D) tasks lift their positions with z = 0 (see :func:`fiper.interventions.trajectory.lift_chunks`).
Higher is better. The built-ins are penalties (<= 0) that are 0 when the constraint holds; they
add up with :class:`WeightedSum`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor

from fiper.interventions.registry import Registry
from fiper.interventions.trajectory import load_reward


@runtime_checkable
class RewardProgram(Protocol):
    """Differentiable ``(batch, steps, 3) -> (batch,)``; higher reward = better trajectory."""

    def __call__(self, trajectory: Tensor) -> Tensor: ...


def _point(value: Sequence[float], name: str) -> Tensor:
    """A 3-vector from 2 or 3 numbers (2-D points get z = 0)."""
    t = torch.as_tensor([float(v) for v in value], dtype=torch.float64)
    if t.ndim != 1 or t.numel() not in (2, 3):
        raise ValueError(f"{name}={list(value)} is invalid: give 2 (x, y) or 3 (x, y, z) numbers")
    return F.pad(t, (0, 3 - t.numel()))


def _positive(value: float, name: str) -> float:
    value = float(value)
    if not value > 0:
        raise ValueError(f"{name}={value!r} is invalid: must be > 0")
    return value


def _check_traj(trajectory: Tensor, who: str) -> None:
    if trajectory.ndim != 3 or trajectory.shape[-1] != 3:
        raise ValueError(
            f"{who} expects a trajectory (batch, steps, 3); got shape {tuple(trajectory.shape)} "
            "(lift 2-D positions with fiper.interventions.lift_chunks, which pads z = 0)"
        )


def _on(obj: Any, name: str, like: Tensor) -> Tensor:
    """``obj.<name>`` (a host tensor) in ``like``'s dtype and device, copied there once, not at every call:
    a copy per sampling step would make the host wait for the device each time."""
    value = getattr(obj, name)
    cache = obj.__dict__.setdefault("_copies", {})
    key = (name, id(value), like.device, like.dtype)
    if key not in cache:
        cache[key] = value.to(like.device, like.dtype, non_blocking=True)
    return cache[key]


def segment_distance(points: Tensor, center: Tensor) -> Tensor:
    """Distance from ``center`` to each straight segment between consecutive points: (b, T, d) -> (b, T-1).

    Its gradient moves a segment perpendicular to itself when the closest point is inside it, so a
    path is pushed sideways around an obstacle instead of being torn apart along its direction.
    """
    a, b = points[:, :-1], points[:, 1:]
    ab, ac = b - a, center - a
    t = ((ac * ab).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-12)).clamp(0.0, 1.0)
    closest = a + t.unsqueeze(-1) * ab
    return torch.sqrt(((center - closest) ** 2).sum(-1) + 1e-12)


def soft_barrier(violation: Tensor, tau: float) -> Tensor:
    """-tau * softplus(violation / tau): ~0 when violation << 0, ~-violation when violation >> tau."""
    return -tau * F.softplus(violation / tau)


class KeepOut:
    """Soft barrier around an obstacle: sum over steps of -tau*softplus((radius + margin - d) / tau).

    ``shape='sphere'`` uses the 3-D distance d to ``center``; ``'cylinder'`` the distance to a
    vertical axis through ``center`` (a disc in the plane for 2-D tasks). The reward is ~0 outside
    radius + margin and about minus the summed penetration depth inside. With ``segments=True``
    (default) d is the distance to each straight segment between consecutive points, so a path
    cannot "jump" over the obstacle between two predicted steps and is pushed sideways.
    """

    def __init__(self, center: Sequence[float], radius: float, margin: float = 0.0, tau: float = 0.01,
                 shape: str = "cylinder", segments: bool = True):
        if shape not in ("sphere", "cylinder"):
            raise ValueError(f"shape={shape!r} is invalid: choose 'sphere' or 'cylinder'")
        self.center = _point(center, "center")
        self.radius = _positive(radius, "radius")
        self.margin = float(margin)
        self.tau = _positive(tau, "tau")
        self.shape = shape
        self.segments = bool(segments)

    def distance(self, trajectory: Tensor) -> Tensor:
        """Distance to the obstacle's centre (or axis): per segment (batch, steps-1), or per point (batch, steps)."""
        _check_traj(trajectory, "KeepOut")
        dims = 2 if self.shape == "cylinder" else 3
        points, center = trajectory[..., :dims], _on(self, "center", trajectory)[:dims]
        if self.segments and trajectory.shape[1] > 1:
            return segment_distance(points, center)
        return torch.sqrt(((points - center) ** 2).sum(-1) + 1e-12)

    def __call__(self, trajectory: Tensor) -> Tensor:
        violation = self.radius + self.margin - self.distance(trajectory)
        return soft_barrier(violation, self.tau).sum(-1)

    def value_and_grad(self, trajectory: Tensor) -> tuple[Tensor, Tensor]:
        """The reward (batch,) and its gradient d reward / d trajectory (batch, steps, 3), in closed form.

        Steering calls it at every sampling step instead of autograd (a few ops instead of a backward
        graph). Per segment the distance's gradient is -(1 - t) u at its start and -t u at its end (u the
        unit vector from the closest point to the centre): the closest point's parameter t is optimal, so
        its own variation does not change the distance.
        """
        _check_traj(trajectory, "KeepOut")
        dims = 2 if self.shape == "cylinder" else 3
        points, center = trajectory[..., :dims], _on(self, "center", trajectory)[:dims]
        grad = torch.zeros_like(trajectory)
        if self.segments and trajectory.shape[1] > 1:
            a, ab = points[:, :-1], points[:, 1:] - points[:, :-1]
            t = ((center - a) * ab).sum(-1).div((ab * ab).sum(-1).clamp_min(1e-12)).clamp(0.0, 1.0).unsqueeze(-1)
            away = center - (a + t * ab)  # closest point -> centre
            dist = torch.sqrt((away * away).sum(-1) + 1e-12)
            violation = self.radius + self.margin - dist
            push = torch.sigmoid(violation / self.tau).unsqueeze(-1) * away / dist.unsqueeze(-1)  # -dR/dq
            grad[:, :-1, :dims] = -(1 - t) * push
            grad[:, 1:, :dims] -= t * push
        else:
            away = center - points
            dist = torch.sqrt((away * away).sum(-1) + 1e-12)
            violation = self.radius + self.margin - dist
            grad[..., :dims] = -torch.sigmoid(violation / self.tau).unsqueeze(-1) * away / dist.unsqueeze(-1)
        return soft_barrier(violation, self.tau).sum(-1), grad


class Reach:
    """Negative squared distance to a target point (or outside a target sphere of ``radius``).

    ``which='final'`` scores the last point of the trajectory, ``'closest'`` the point nearest
    the target, so the path may pass through the target before moving on.
    """

    def __init__(self, target: Sequence[float], radius: float = 0.0, which: str = "final"):
        if which not in ("final", "closest"):
            raise ValueError(f"which={which!r} is invalid: choose 'final' or 'closest'")
        if float(radius) < 0:
            raise ValueError(f"radius={radius!r} is invalid: must be >= 0")
        self.target = _point(target, "target")
        self.radius = float(radius)
        self.which = which

    def __call__(self, trajectory: Tensor) -> Tensor:
        _check_traj(trajectory, "Reach")
        points = trajectory[:, -1:] if self.which == "final" else trajectory
        dist = torch.sqrt(((points - _on(self, "target", trajectory)) ** 2).sum(-1) + 1e-12)
        return -(F.relu(dist - self.radius) ** 2).min(-1).values


class AboveTable:
    """Keep every point at height z >= z_min: sum over steps of a soft barrier on z_min - z."""

    def __init__(self, z_min: float, tau: float = 0.01):
        self.z_min = float(z_min)
        self.tau = _positive(tau, "tau")

    def __call__(self, trajectory: Tensor) -> Tensor:
        _check_traj(trajectory, "AboveTable")
        return soft_barrier(self.z_min - trajectory[..., 2], self.tau).sum(-1)


class InWorkspace:
    """Keep every point inside the box [low, high]: soft barriers on all six faces, summed."""

    def __init__(self, low: Sequence[float], high: Sequence[float], tau: float = 0.01):
        lo, hi = torch.as_tensor([float(v) for v in low]), torch.as_tensor([float(v) for v in high])
        if lo.shape != hi.shape or lo.numel() not in (2, 3) or not bool((hi > lo).all()):
            raise ValueError(f"low={list(low)}, high={list(high)} are invalid: give 2 or 3 bounds each with high > low")
        self.dims = lo.numel()  # a 2-D box leaves z free
        self.low, self.high = lo.double(), hi.double()
        self.tau = _positive(tau, "tau")

    def __call__(self, trajectory: Tensor) -> Tensor:
        _check_traj(trajectory, "InWorkspace")
        p = trajectory[..., : self.dims]
        below = soft_barrier(_on(self, "low", p) - p, self.tau)
        above = soft_barrier(p - _on(self, "high", p), self.tau)
        return (below + above).sum((-1, -2))


class WeightedSum:
    """Composition of reward programs: sum_i w_i * R_i(trajectory)."""

    def __init__(self, terms: Sequence[tuple[float, Callable[[Tensor], Tensor]]]):
        if not terms:
            raise ValueError("WeightedSum needs at least one (weight, reward) term")
        self.terms = []
        for i, term in enumerate(terms):
            if not (isinstance(term, (tuple, list)) and len(term) == 2 and callable(term[1])):
                raise ValueError(f"term {i} of WeightedSum is {term!r}; give (weight, reward_callable)")
            self.terms.append((float(term[0]), term[1]))

    def __call__(self, trajectory: Tensor) -> Tensor:
        return sum(w * r(trajectory) for w, r in self.terms)

    @property
    def value_and_grad(self) -> Callable[[Tensor], tuple[Tensor, Tensor]] | None:
        """Closed-form reward and gradient when every term has one (see KeepOut.value_and_grad), else None."""
        parts = [(w, getattr(r, "value_and_grad", None)) for w, r in self.terms]
        if any(not callable(f) for _, f in parts):
            return None

        def both(trajectory: Tensor) -> tuple[Tensor, Tensor]:
            out = [(w, *f(trajectory)) for w, f in parts]
            return sum(w * r for w, r, _ in out), sum(w * g for w, _, g in out)
        return both


REWARDS = Registry("reward", {
    "keep_out": KeepOut,
    "reach": Reach,
    "above_table": AboveTable,
    "in_workspace": InWorkspace,
}, build=lambda obj, path, **kwargs: load_reward(obj, **kwargs).named(path))  # the reward itself, or with settings its factory


def register_reward(name: str, factory: Callable[..., RewardProgram], *, overwrite: bool = False) -> None:
    """Make ``make_reward(name, **kw)`` build ``factory(**kw)``."""
    REWARDS.register(name, factory, overwrite=overwrite)


def make_reward(name: str, **kwargs: Any) -> RewardProgram:
    """Build the registered reward ``name`` with ``kwargs``."""
    return REWARDS.make(name, **kwargs)


def compose(terms: Sequence[Any]) -> WeightedSum:
    """A weighted sum from config-friendly terms: ``{'name': ..., 'weight': w, **kwargs}`` or (w, callable)."""
    built = []
    for term in terms:
        if isinstance(term, dict):
            spec = dict(term)
            weight = float(spec.pop("weight", 1.0))
            if "name" not in spec:
                raise ValueError(f"reward term {term!r} has no 'name'; known rewards: {sorted(REWARDS)}")
            built.append((weight, make_reward(spec.pop("name"), **spec)))
        else:
            built.append(term)
    return WeightedSum(built)
