"""VLS-style steering: reward-guided, repulsed, Feynman-Kac-resampled sampling of a frozen policy.

At every denoising / integration step the policy calls ``Steering(state)`` with its clean-chunk
estimate x0 (env units). Steering, per particle b of observation n:

1. R_b = R(lift(x0_b)) and its gradient g_b = dR/dx0 by autograd (no backprop through the policy);
2. g_b <- g_b * action_scale (to normalised units; or / action_scale with direction_space='env'),
   masked to the position dims of the executed steps (optionally only its part across the path),
   divided by max(|g_b|, grad_floor) (unit vectors by default), times guide_scale * strength_n
   (the policy applies it: diffusion eps <- eps - sqrt(1 - abar_t) * d; flow v <- v + d);
3. while progress <= repulsion_until: + repulsion_scale * RBF repulsion between particles;
4. running-max reward M_b = max over steps of R_b; every fk_every steps, if the ESS of
   w_b ∝ exp(fk_lambda * M_b) is below B/2, systematic resampling re-indexes the particles.

After sampling, :meth:`Steering.select` executes the highest-reward particle.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from fiper.protocol import GenerativePolicy, GuidanceResult, GuidanceState
from fiper.interventions.particles import effective_sample_size, rbf_repulsion, systematic_resample, unit_normalise
from fiper.interventions.progress import StageTracker
from fiper.interventions.scene import bind_scene
from fiper.interventions.trajectory import CheckedReward, lift_chunks


def _check(ok: bool, name: str, value: Any, need: str) -> None:
    if not ok:
        raise ValueError(f"{name}={value!r} is invalid: {need}")


@dataclass
class SteeringConfig:
    """Knobs of :class:`Steering`; every bad value fails at construction, naming the field."""

    num_particles: int = 32  # B, the batch sampled per steered decision
    guide_scale: float = 1.0  # size of the unit reward-gradient step (normalised units)
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
            _check(float(getattr(self, name)) >= 0, name, getattr(self, name), "must be >= 0")
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


def lateral_part(grad: Tensor, x0: Tensor, dims: Sequence[int], velocity: bool = False) -> Tensor:
    """The gradient without its component along the predicted path, on the position dims.

    The path's local direction is the central difference of the positions (or, for velocity
    actions, the velocity itself). What remains bends the path without re-timing it.
    """
    dims = list(dims)
    p = x0[..., dims]
    if velocity or p.shape[-2] < 2:
        tangent = p
    else:
        tangent = torch.cat([p[..., 1:2, :] - p[..., :1, :], p[..., 2:, :] - p[..., :-2, :],
                             p[..., -1:, :] - p[..., -2:-1, :]], dim=-2)
    tangent = tangent / tangent.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    g = grad[..., dims]
    out = grad.clone()
    out[..., dims] = g - (g * tangent).sum(-1, keepdim=True) * tangent
    return out


class SteerOutput(NamedTuple):
    """What :meth:`Steering.steer` returns: the chunk to execute and what it was chosen from."""

    chunk: Tensor  # (N, H, A), env units
    samples: Tensor  # (N, B, H, A)
    rewards: Tensor  # (N, B)


@dataclass
class _Run:
    """Per-sampling-run state, rebuilt at step 0."""

    running_max: Tensor
    strength: Tensor
    resamples: int = 0
    min_ess: float = float("inf")
    shape: tuple = field(default_factory=tuple)


class Steering:
    """Guidance hook (fiper.protocol.Guidance) steering a frozen policy toward high reward.

    ``reward`` is one reward program, or a sequence of them for a staged task (see
    :class:`~fiper.interventions.progress.StageTracker`). Config fields may also be passed as
    keyword overrides. Works for diffusion and flow policies alike.
    """

    excluded_scores: tuple[str, ...] = ("ace",)

    def __init__(self, reward: Callable[[Tensor], Tensor] | Sequence[Callable[[Tensor], Tensor]],
                 config: SteeringConfig | None = None, **overrides: Any):
        cfg = asdict(config) if config is not None else {}
        cfg.update(overrides)
        self.config = SteeringConfig(**cfg)
        stages = list(reward) if isinstance(reward, (list, tuple)) else [reward]
        if not stages:
            raise ValueError("Steering needs at least one reward program")
        self.rewards = [r if isinstance(r, CheckedReward) else CheckedReward(r) for r in stages]
        self.excluded_scores = self.config.exclude_scores
        c = self.config
        self.tracker = StageTracker(len(self.rewards), advance_at=c.advance_at, retry_below=c.retry_below,
                                    adaptive=c.adaptive_strength, sharpness=c.strength_sharpness,
                                    midpoint=c.strength_midpoint, min_strength=c.min_strength)
        self._generators: dict[str, torch.Generator] = {}
        self._run: _Run | None = None

    # -- life cycle --------------------------------------------------------------------------
    def reset(self) -> None:
        """New episode: back to stage 0, no baseline reward, fresh resampling stream."""
        self.tracker.reset(len(self.tracker.stage))
        self._generators.clear()
        self._run = None

    def bind(self, env: Any) -> None:
        """New episode's scene: binds every scene-aware reward program (e.g. SceneKeepOut)."""
        bind_scene(self.rewards, env)

    @property
    def last_run(self) -> dict[str, float]:
        """Diagnostics of the latest sampling run: resampling events and the lowest ESS seen."""
        if self._run is None:
            return {"resamples": 0, "min_ess": float("nan")}
        return {"resamples": self._run.resamples, "min_ess": self._run.min_ess}

    def _generator(self, device: torch.device) -> torch.Generator | None:
        if self.config.seed is None:
            return None
        key = str(device)
        if key not in self._generators:
            self._generators[key] = torch.Generator(device=device).manual_seed(self.config.seed)
        return self._generators[key]

    # -- rewards -----------------------------------------------------------------------------
    def rewards_of(self, chunks: Tensor, stages: np.ndarray | None = None) -> Tensor:
        """Reward (N, B) of chunks (N, B, H, A) under each observation's current stage program."""
        n, b = chunks.shape[:2]
        stages = self.tracker.stage if stages is None else stages
        if len(stages) != n:
            stages = np.zeros(n, dtype=np.int64)
        out = chunks.new_zeros(n, b)
        for k in np.unique(stages):
            rows = torch.as_tensor(np.flatnonzero(stages == k), device=chunks.device)
            traj = lift_chunks(chunks[rows], self.config.position_dims, velocity=self.config.velocity_actions)
            out = out.index_put((rows,), self.rewards[int(k)](traj).reshape(len(rows), b).to(out.dtype))
        return out

    def _mask(self, horizon: int, action_dim: int, device: torch.device) -> Tensor:
        if max(self.config.position_dims) >= action_dim:
            raise ValueError(
                f"position_dims={list(self.config.position_dims)} index past action_dim={action_dim}: "
                "set Steering position_dims to the policy's position entries"
            )
        mask = torch.zeros(horizon, action_dim, device=device)
        steps = horizon if self.config.executed_steps is None else min(self.config.executed_steps, horizon)
        mask[:steps, list(self.config.position_dims)] = 1.0
        return mask

    # -- the guidance hook -------------------------------------------------------------------
    def __call__(self, state: GuidanceState) -> GuidanceResult:
        c = self.config
        x0 = state.x0.detach()
        if x0.ndim != 4:
            raise ValueError(f"GuidanceState.x0 must be (N, B, H, A); got shape {tuple(x0.shape)}")
        if not bool(torch.isfinite(x0).all()):
            raise ValueError(f"the policy's clean estimate x0 has NaN/inf values at sampling step {state.step}; "
                             "steering cannot score it (the wrapper should fall back)")
        n, b, h, a = x0.shape
        if state.step == 0 or self._run is None or self._run.shape != (n, b):
            self.tracker.ensure(n)
            strength = torch.as_tensor(self.tracker.strength(), dtype=x0.dtype, device=x0.device)
            self._run = _Run(torch.full((n, b), -torch.inf, dtype=x0.dtype, device=x0.device), strength, shape=(n, b))
        run = self._run
        mask = self._mask(h, a, x0.device)
        with torch.enable_grad():
            x0g = x0.clone().requires_grad_(True)
            reward = self.rewards_of(x0g)
            (grad,) = torch.autograd.grad(reward.sum(), x0g, allow_unused=True)
        grad = torch.zeros_like(x0) if grad is None else grad
        run.running_max = torch.maximum(run.running_max, reward.detach())

        scale = state.action_scale.to(x0)
        direction = torch.zeros_like(x0)
        if c.guide_scale > 0 and state.progress >= c.guide_from:
            if c.lateral_only:
                grad = lateral_part(grad, x0, c.position_dims, c.velocity_actions)
            g = grad * scale if c.direction_space == "normalised" else grad / scale
            g = unit_normalise(g * mask, c.grad_floor)
            direction = direction + c.guide_scale * run.strength[:, None, None, None] * g
        if c.repulsion_scale > 0 and state.progress <= c.repulsion_until:
            sel = mask.bool()
            y = (x0 / scale)[:, :, sel]  # (N, B, F) positions in normalised units
            rep = torch.zeros_like(x0)
            rep[:, :, sel] = rbf_repulsion(y)
            direction = direction + c.repulsion_scale * rep

        indices = None
        if c.fk_every and (state.step + 1) % c.fk_every == 0 and b > 1:
            log_w = c.fk_lambda * run.running_max
            ess = effective_sample_size(log_w)
            run.min_ess = min(run.min_ess, float(ess.min()))
            low = ess < b / 2
            if bool(low.any()):
                drawn = systematic_resample(log_w, self._generator(x0.device))
                keep = torch.arange(b, device=x0.device).expand(n, b)
                indices = torch.where(low[:, None], drawn, keep)
                run.running_max = torch.gather(run.running_max, 1, indices)
                direction = direction[torch.arange(n, device=x0.device)[:, None], indices]
                run.resamples += 1
        return GuidanceResult(direction=direction.to(state.x.dtype), indices=indices)

    # -- after sampling ----------------------------------------------------------------------
    @torch.no_grad()
    def select(self, samples: Tensor) -> tuple[Tensor, Tensor]:
        """Index (N,) of the highest-reward particle per observation, and all rewards (N, B)."""
        if samples.ndim != 4:
            raise ValueError(f"samples must be (N, B, H, A); got shape {tuple(samples.shape)}")
        rewards = self.rewards_of(samples)
        return rewards.argmax(dim=1), rewards

    @torch.no_grad()
    def record(self, chunk: Tensor) -> None:
        """Feed the executed chunks (N, H, A) to the progress / stage tracker."""
        stage_rewards = []
        for k in range(len(self.rewards)):
            stages = np.full(chunk.shape[0], k, dtype=np.int64)
            stage_rewards.append(self.rewards_of(chunk[:, None], stages)[:, 0])
        self.tracker.update(torch.stack(stage_rewards, dim=1).double().cpu().numpy())

    def steer(self, policy: GenerativePolicy, embedding: Tensor, num_samples: int | None = None,
              generator: torch.Generator | None = None) -> SteerOutput:
        """Sample B guided chunks, execute the best: (chunk (N, H, A), samples, rewards (N, B))."""
        b = self.config.num_particles if num_samples is None else int(num_samples)
        self.tracker.ensure(int(embedding.shape[0]))
        samples = policy.sample(embedding, b, generator=generator, guidance=self)
        best, rewards = self.select(samples)
        chunk = samples[torch.arange(samples.shape[0], device=samples.device), best]
        self.record(chunk)
        return SteerOutput(chunk, samples, rewards)
