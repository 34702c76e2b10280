"""The knobs of VLS-style steering (:class:`fiper.interventions.steering.Steering`), checked once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


def _check(ok: bool, name: str, value: Any, need: str) -> None:
    if not ok:
        raise ValueError(f"{name}={value!r} is invalid: {need}")


# The guide scale each sampler needs (docs/interventions.md, "Diffusion needs a ~10x larger guide_scale than flow":
# a diffusion step moves the clean estimate by about (1 - abar_t) / sqrt(abar_t) of the direction, a flow step by all of it)
GUIDE_SCALE = {"diffusion": 40.0, "flow": 2.0}


def guide_scale_for(config: SteeringConfig, kind: str) -> float:
    """The configured guide scale, else the default of the policy's sampler kind (GuidanceState.kind)."""
    if config.guide_scale is not None:
        return float(config.guide_scale)
    if kind not in GUIDE_SCALE:
        raise ValueError(f"the policy's guidance kind is {kind!r}, which has no default guide_scale (known: "
                         f"{', '.join(f'{k} {v:g}' for k, v in GUIDE_SCALE.items())}); set steering guide_scale")
    return GUIDE_SCALE[kind]


@dataclass
class SteeringConfig:
    """Knobs of :class:`Steering`; every bad value fails at construction, naming the field."""

    num_particles: int = 32  # B, the batch sampled per steered decision
    guide_scale: float | None = None  # size of the unit reward-gradient step; None: GUIDE_SCALE[the policy's kind]
    guide_from: float = 0.0  # sampling progress from which the reward gradient is applied
    grad_floor: float = 0.0  # normalise by max(|g|, grad_floor): 0 = unit vectors (published)
    lateral_only: bool = False  # keep only the gradient across the predicted path (no re-timing)
    direction_space: str = "normalised"  # "normalised": dR/dx0 * scale (chain rule); "env": / scale
    repulsion_scale: float = 0.5  # size of the mean RBF repulsion step
    repulsion_until: float = 0.3  # repulsion only while sampling progress <= this (high noise)
    fk_every: int = 2  # Feynman-Kac resampling check every this many steps; 0 disables
    fk_lambda: float = 10.0  # weights ∝ exp(fk_lambda * running-max reward)
    position_dims: Sequence[int] = (0, 1)  # action entries that are positions (or velocities)
    executed_steps: int | None = None  # the reward gradient acts on the first steps only; None = all H
    velocity_actions: bool = False  # integrate actions (velocities) to positions before the reward
    adaptive_strength: bool = True  # strength decays with task progress (see progress.py)
    strength_sharpness: float = 10.0
    strength_midpoint: float = 0.5
    min_strength: float = 0.1
    advance_at: float = 0.8  # stage hysteresis: advance above, retry below
    retry_below: float = 0.6
    exclude_scores: Sequence[str] = ("ace",)  # monitor scores invalid under steered sampling
    seed: int | None = None  # for the resampling random numbers

    def __post_init__(self) -> None:
        _check(isinstance(self.num_particles, int) and self.num_particles >= 2, "num_particles",
               self.num_particles, "steering needs an integer >= 2 particles")
        for name in ("guide_scale", "grad_floor", "repulsion_scale", "fk_lambda"):
            value = getattr(self, name)
            _check((name == "guide_scale" and value is None) or float(value) >= 0, name, value,
                   "must be >= 0" + (" (or None: the policy kind's default)" if name == "guide_scale" else ""))
        for name in ("guide_from", "repulsion_until"):
            _check(0.0 <= float(getattr(self, name)) <= 1.0, name, getattr(self, name), "is a sampling progress in [0, 1]")
        _check(isinstance(self.fk_every, int) and self.fk_every >= 0, "fk_every", self.fk_every,
               "must be an integer >= 0 (0 disables resampling)")
        self.position_dims = tuple(int(d) for d in self.position_dims)
        _check(1 <= len(self.position_dims) <= 3 and len(set(self.position_dims)) == len(self.position_dims),
               "position_dims", self.position_dims, "give 1 to 3 distinct action indices")
        _check(self.executed_steps is None or (isinstance(self.executed_steps, int) and self.executed_steps >= 1),
               "executed_steps", self.executed_steps, "must be an integer >= 1 or None (whole horizon)")
        self.exclude_scores = tuple(str(s) for s in self.exclude_scores)
        _check(self.direction_space in ("normalised", "env"), "direction_space", self.direction_space,
               "choose 'normalised' (gradient in the policy's coordinates) or 'env' (steepest in env units)")
