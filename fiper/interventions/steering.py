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

The hook never reads a value back to the host: the ESS test and the resampling are decided with
``torch.where`` on the device, and non-finite values are recorded as device flags that
:meth:`Steering.steer` reads in its one copy after the loop. On a GPU the loop therefore queues
work without waiting, and on a CPU it saves the per-step bookkeeping.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from fiper.protocol import GenerativePolicy, GuidanceResult, GuidanceState
from fiper.interventions.lateral import lateral
from fiper.interventions.particles import rbf_repulsion, resample_low_ess, unit_normalise
from fiper.interventions.progress import StageTracker
from fiper.interventions.scene import bind_scene, scene_aware_parts
from fiper.interventions.steering_config import SteeringConfig, guide_scale_for
from fiper.interventions.trajectory import NOT_DIFFERENTIABLE, CheckedReward, lift_chunks, probe_reward
from fiper.interventions.velocity_path import VelocityFrame, velocity_gradient


class SteerOutput(NamedTuple):
    """What :meth:`Steering.steer` returns: the chunk to execute and what it was chosen from."""

    chunk: Tensor  # (N, H, A), env units
    samples: Tensor  # (N, B, H, A)
    rewards: Tensor  # (N, B)


@dataclass
class _Run:
    """Per-sampling-run state, rebuilt at step 0. Every tensor stays on the policy's device."""

    shape: tuple  # (N, B, H, A)
    running_max: Tensor  # (N, B)
    strength: float | Tensor  # one float when every observation shares it, else (N, 1, 1, 1)
    scale: Tensor  # (k,) action scale of the position dims
    steps: int  # the reward gradient acts on steps [0, steps)
    resamples: Tensor  # () count of checks at which some observation resampled
    min_ess: Tensor  # () lowest ESS seen
    checks: list = field(default_factory=list)  # per step: (x0 finite, reward finite), read after sampling
    check_steps: list = field(default_factory=list)


class Steering:
    """Guidance hook (fiper.protocol.Guidance) steering a frozen policy toward high reward.

    ``reward`` is one reward program, or a sequence of them for a staged task (see
    :class:`~fiper.interventions.progress.StageTracker`). Config fields may also be passed as
    keyword overrides. Works for diffusion and flow policies alike. With ``velocity_actions`` the paths start at
    ``frame`` (:mod:`~fiper.interventions.velocity_path`: the measured positions and the control period), which
    :meth:`steer` takes per decision (a hand-driven sampling loop sets it first).
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
        self._dims: dict[str, Tensor] = {}
        self._run: _Run | None = None
        self.frame: VelocityFrame | None = None  # where this decision's velocity paths start
        self.binds = 0  # bind() calls so far: the control loop tells a fresh scene from the last episode's

    # -- life cycle --------------------------------------------------------------------------
    def reset(self) -> None:
        """New episode: back to stage 0, no baseline reward, fresh resampling stream."""
        self.tracker.reset(len(self.tracker.stage))
        self._generators.clear()
        self._run = None
        self.frame = None

    def bind(self, env: Any) -> None:
        """New episode's scene: binds every scene-aware reward program (e.g. SceneKeepOut); ``binds`` counts the calls."""
        bind_scene(self.rewards, env)
        if self.binds == 0:
            self.probe(getattr(env, "action_space", None))
        self.binds += 1

    def probe(self, action_space: Any, steps: int = 8) -> None:
        """Call every reward program once on chunks of actions drawn uniformly in ``action_space`` (a bounded Box;
        anything else is skipped), lifted as steering lifts them: a program that raises, returns a wrong shape, a
        non-finite value or one without a gradient is refused here (a ValueError naming it and the fix), when the
        steering is first bound to an env, instead of at the first alarm. Velocities are integrated from 0 with a unit
        step here: the probe checks the program, not where the robot is."""
        low, high = (np.asarray(getattr(action_space, k, np.nan), dtype=np.float64) for k in ("low", "high"))
        if low.ndim != 1 or low.shape != high.shape or not (np.isfinite(low).all() and np.isfinite(high).all()):
            return
        if max(self.config.position_dims) >= low.shape[0]:
            raise ValueError(f"steering position_dims={list(self.config.position_dims)} index past the env's "
                             f"{low.shape[0]}-d action: set them to the action's position entries")
        chunks = torch.as_tensor(np.random.default_rng(0).uniform(low, high, (4, steps, low.shape[0])), dtype=torch.float32)
        trajectory = lift_chunks(chunks, self.config.position_dims, velocity=self.config.velocity_actions)
        for reward in self.rewards:
            probe_reward(reward, trajectory)

    @property
    def reads_scene(self) -> bool:
        """Whether a reward program reads the episode's scene, so that each episode must be bound anew."""
        return bool(scene_aware_parts(self.rewards))

    @property
    def last_run(self) -> dict[str, float]:
        """Diagnostics of the latest sampling run: resampling events and the lowest ESS seen.

        Reading them copies two numbers from the device: call it after sampling, not inside it.
        """
        if self._run is None:
            return {"resamples": 0, "min_ess": float("nan")}
        return {"resamples": int(self._run.resamples), "min_ess": float(self._run.min_ess)}

    def _generator(self, device: torch.device) -> torch.Generator | None:
        if self.config.seed is None:
            return None
        key = str(device)
        if key not in self._generators:
            self._generators[key] = torch.Generator(device=device).manual_seed(self.config.seed)
        return self._generators[key]

    # -- rewards -----------------------------------------------------------------------------
    def _positions(self, chunks: Tensor) -> Tensor:
        """The position entries (..., H, k) of chunks (..., H, A), without a host-to-device index copy."""
        dims = list(self.config.position_dims)
        if max(dims) >= chunks.shape[-1]:
            raise ValueError(
                f"position_dims={dims} index past action_dim={chunks.shape[-1]}: "
                "set Steering position_dims to the policy's position entries"
            )
        sl = self._dims_slice()
        return chunks[..., sl] if sl is not None else chunks.index_select(-1, self._dims_index(chunks.device))

    def _dims_index(self, device: torch.device) -> Tensor:
        key = str(device)
        if key not in self._dims:
            self._dims[key] = torch.tensor(self.config.position_dims).to(device, non_blocking=True)
        return self._dims[key]

    def _lift(self, pos: Tensor, rows: Tensor | None = None) -> Tensor:
        """Trajectories of position blocks (n, B, H, k) (observations ``rows`` of the frame): positions as they are, or
        velocities integrated from this decision's frame."""
        dims = tuple(range(pos.shape[-1]))
        if not self.config.velocity_actions:
            return lift_chunks(pos, dims)
        if self.frame is None:
            raise ValueError("velocity steering has no start for its paths: pass steer(..., frame=velocity_frame(context, "
                             "obs, device)) (MonitoredPolicy does), or set Steering.frame before sampling by hand")
        return lift_chunks(pos, dims, velocity=True, start=self.frame.rows(pos.shape[0], rows), dt=self.frame.dt)

    def _rewards_of_positions(self, pos: Tensor, stages: np.ndarray, check: bool) -> Tensor:
        """Reward (N, B) of position blocks (N, B, H, k) under each observation's stage program.

        ``check=False`` leaves the finiteness check to the caller (on the device, after sampling).
        """
        n, b = pos.shape[:2]
        stage = self._single_stage(n, stages)

        def reward(stage: int, p: Tensor, rows: Tensor | None = None) -> Tensor:
            traj = self._lift(p, rows)
            program = self.rewards[int(stage)]
            return (program(traj) if check else program.shaped(traj)).reshape(p.shape[0], b).to(pos.dtype)

        if stage is not None:
            return reward(stage, pos)
        out = pos.new_zeros(n, b)
        for k_stage in np.unique(stages):
            rows = torch.from_numpy(np.flatnonzero(stages == k_stage)).to(pos.device, non_blocking=True)
            out = out.index_put((rows,), reward(int(k_stage), pos[rows], rows))
        return out

    def _single_stage(self, n: int, stages: np.ndarray) -> int | None:
        """The stage every one of n observations is in (host numpy, no device read), or None if they differ."""
        if len(stages) != n:
            return 0
        first = int(stages[0])
        return first if bool((stages == first).all()) else None

    def _reward_and_grad(self, pos: Tensor) -> tuple[Tensor, Tensor | None]:
        """Rewards (N, B) of position blocks (N, B, H, k) and their gradient d reward / d positions.

        A program with a closed-form ``value_and_grad`` (KeepOut, SceneKeepOut, a WeightedSum of
        them) gives both in a few ops; any other program is differentiated by autograd. Values are
        not checked here (see :meth:`check_run`).
        """
        n, b, h, k = pos.shape
        stage = self._single_stage(n, self.tracker.stage)
        program = self.rewards[stage] if stage is not None else None
        closed = getattr(program.program, "value_and_grad", None) if program is not None else None
        if callable(closed):
            traj = self._lift(pos)
            value, grad = closed(traj)
            if value.shape != traj.shape[:1] or grad.shape != traj.shape:
                raise ValueError(f"reward {program.name!r}: value_and_grad returned shapes {tuple(value.shape)} and "
                                 f"{tuple(grad.shape)} for a trajectory batch {tuple(traj.shape)}; it must return "
                                 f"({traj.shape[0]},) and {tuple(traj.shape)}")
            grad = grad[..., :k].reshape(pos.shape)
            if self.config.velocity_actions:  # positions are the start plus dt times the running sum of the velocities
                grad = velocity_gradient(grad, self.frame.dt)
            return value.reshape(n, b).to(pos.dtype), grad.to(pos.dtype)
        with torch.enable_grad():
            leaf = pos.detach().requires_grad_(True)
            reward = self._rewards_of_positions(leaf, self.tracker.stage, check=False)
            if not reward.requires_grad:
                names = ", ".join(repr(r.name) for r in self.rewards)
                raise ValueError(f"reward {names}: {NOT_DIFFERENTIABLE}")
            (grad,) = torch.autograd.grad(reward.sum(), leaf, allow_unused=True)
        return reward.detach(), grad

    def rewards_of(self, chunks: Tensor, stages: np.ndarray | None = None) -> Tensor:
        """Reward (N, B) of chunks (N, B, H, A) under each observation's current stage program."""
        return self._rewards_of_positions(self._positions(chunks), self.tracker.stage if stages is None else stages, True)

    def _new_run(self, x0: Tensor, action_scale: Tensor) -> _Run:
        """State of a sampling run: running max, strength, scale and counters, all on x0's device."""
        n, b, h, _ = x0.shape
        self.tracker.ensure(n)
        s = self.tracker.strength()
        strength = float(s[0]) if bool((s == s[0]).all()) else \
            torch.from_numpy(s).to(x0.device, x0.dtype, non_blocking=True)[:, None, None, None]
        steps = h if self.config.executed_steps is None else min(self.config.executed_steps, h)
        return _Run(tuple(x0.shape), torch.full((n, b), -torch.inf, dtype=x0.dtype, device=x0.device), strength,
                    self._positions(action_scale.to(x0)), steps, torch.zeros((), dtype=torch.long, device=x0.device),
                    torch.full((), torch.inf, dtype=x0.dtype, device=x0.device))

    # -- the guidance hook -------------------------------------------------------------------
    def __call__(self, state: GuidanceState) -> GuidanceResult:
        """One sampling step's direction and resampling, decided on the device (no host synchronisation).

        A non-finite x0 or reward is recorded, not raised here (raising would need the values on
        the host): those particles get no push, and :meth:`check_run` (``steer`` calls it after
        sampling) raises naming the first step.
        """
        c = self.config
        x0 = state.x0.detach()
        if x0.ndim != 4:
            raise ValueError(f"GuidanceState.x0 must be (N, B, H, A); got shape {tuple(x0.shape)}")
        n, b, h, a = x0.shape
        pos = self._positions(x0)  # (N, B, H, k); also checks position_dims against A
        if state.step == 0 or self._run is None or self._run.shape != tuple(x0.shape):
            self._run = self._new_run(x0, state.action_scale)
        run = self._run
        reward, grad = self._reward_and_grad(pos)
        run.checks.append(torch.stack((x0.sum(), reward.sum())))  # finite iff every value is (read after sampling)
        run.check_steps.append(int(state.step))
        run.running_max = torch.fmax(run.running_max, reward)  # fmax skips NaN: a NaN reward never leads

        sub = None  # the direction on the position entries of the executed steps (N, B, steps, k)
        p = pos[:, :, : run.steps]
        scale = guide_scale_for(c, state.kind)
        if scale > 0 and state.progress >= c.guide_from and grad is not None:
            g = grad[:, :, : run.steps]
            if c.lateral_only:
                g = lateral(grad, pos, c.velocity_actions)[:, :, : run.steps]
            g = g * run.scale if c.direction_space == "normalised" else g / run.scale
            sub = (scale * run.strength) * unit_normalise(g, c.grad_floor)
        if c.repulsion_scale > 0 and state.progress <= c.repulsion_until:
            rep = c.repulsion_scale * rbf_repulsion((p / run.scale).flatten(2)).view(p.shape)
            sub = rep if sub is None else sub + rep
        direction = None
        if sub is not None:  # a NaN reward or x0 gives its particle no push (recorded in run.checks)
            sub, sl = torch.nan_to_num(sub, nan=0.0, posinf=0.0, neginf=0.0), self._dims_slice()
            if sl == slice(0, a) and run.steps == h:  # the positions are the whole chunk
                direction = sub
            else:
                direction = x0.new_zeros(x0.shape)
                target = direction[:, :, : run.steps]
                if sl is not None:
                    target[..., sl] = sub
                else:
                    target.index_copy_(-1, self._dims_index(x0.device), sub)

        indices = None
        if c.fk_every and (state.step + 1) % c.fk_every == 0 and b > 1:
            indices, ess, low = resample_low_ess(c.fk_lambda * run.running_max, self._generator(x0.device))
            run.min_ess = torch.minimum(run.min_ess, ess.min())
            run.resamples = run.resamples + low.any()
            run.running_max = torch.gather(run.running_max, 1, indices)
            if direction is not None:
                direction = direction.gather(1, indices[:, :, None, None].expand(n, b, h, a))
        return GuidanceResult(direction=None if direction is None else direction.to(state.x.dtype), indices=indices)

    def _dims_slice(self) -> slice | None:
        """position_dims as a slice when they are consecutive (a view, no index tensor), else None."""
        dims = list(self.config.position_dims)
        return slice(dims[0], dims[-1] + 1) if dims == list(range(dims[0], dims[0] + len(dims))) else None

    def _check_flags(self, flags: np.ndarray, rewards_finite: bool) -> None:
        """Raise for the first non-finite x0 or reward of the run, from the host copy of the per-step
        sums (steps, 2) of x0 and of the rewards (a sum is finite iff its terms are)."""
        run = self._run
        steps = run.check_steps if run is not None else []
        names = ", ".join(repr(r.name) for r in self.rewards)
        for step, (x0_ok, reward_ok) in zip(steps, np.isfinite(flags).reshape(-1, 2)):
            if not x0_ok:
                raise ValueError(f"the policy's clean estimate x0 has NaN/inf values at sampling step {step}; "
                                 "steering cannot score it (the wrapper falls back)")
            if not reward_ok:
                raise ValueError(f"reward {names} returned non-finite values (NaN/inf) at sampling step {step}; "
                                 "rewards must be finite")
        if not rewards_finite:
            raise ValueError(f"reward {names} returned non-finite values (NaN/inf) for the sampled chunks; rewards must be finite")

    def check_run(self) -> None:
        """Raise if the latest sampling run met a non-finite x0 or reward (one copy from the device)."""
        run = self._run
        if run is not None and run.checks:
            self._check_flags(torch.stack(run.checks).double().cpu().numpy(), True)

    # -- after sampling ----------------------------------------------------------------------
    @torch.no_grad()
    def select(self, samples: Tensor) -> tuple[Tensor, Tensor]:
        """Index (N,) of the highest-reward particle per observation, and all rewards (N, B)."""
        if samples.ndim != 4:
            raise ValueError(f"samples must be (N, B, H, A); got shape {tuple(samples.shape)}")
        rewards = self.rewards_of(samples)
        return rewards.argmax(dim=1), rewards

    def _stage_rewards(self, chunk: Tensor, check: bool) -> Tensor:
        """Rewards (N, n_stages) of executed chunks (N, H, A) under every stage program."""
        pos = self._positions(chunk[:, None])
        return torch.stack([self._rewards_of_positions(pos, np.full(chunk.shape[0], k, dtype=np.int64), check)[:, 0]
                            for k in range(len(self.rewards))], dim=1)

    @torch.no_grad()
    def record(self, chunk: Tensor) -> None:
        """Feed the executed chunks (N, H, A) to the progress / stage tracker."""
        self.tracker.update(self._stage_rewards(chunk, True).double().cpu().numpy())

    @torch.no_grad()
    def steer(self, policy: GenerativePolicy, embedding: Tensor, num_samples: int | None = None,
              generator: torch.Generator | None = None, frame: VelocityFrame | None = None) -> SteerOutput:
        """Sample B guided chunks, execute the best: (chunk (N, H, A), samples, rewards (N, B)).

        ``frame`` places velocity actions' paths (required with ``velocity_actions``; position actions ignore it).

        The sampling loop never waits for the device; afterwards one copy brings the run's finiteness
        flags and the executed chunks' stage rewards to the host (ValueError on a non-finite x0 or reward).
        """
        b = self.config.num_particles if num_samples is None else int(num_samples)
        n = int(embedding.shape[0])
        self.tracker.ensure(n)
        self._run = None
        if self.config.velocity_actions:
            if frame is None:
                raise ValueError("velocity steering needs each decision's frame: steer(..., frame=velocity_frame(context, "
                                 "obs, device)), the measured position and the control period (MonitoredPolicy passes it)")
            self.frame = frame
        samples = policy.sample(embedding, b, generator=generator, guidance=self)
        rewards = self._rewards_of_positions(self._positions(samples), self.tracker.stage, check=False)
        best = torch.where(torch.isfinite(rewards), rewards, -torch.inf).argmax(dim=1)
        chunk = samples.gather(1, best[:, None, None, None].expand(n, 1, *samples.shape[2:]))[:, 0]
        # One stage program: the executed chunks' stage reward is already in ``rewards``.
        stage = rewards.gather(1, best[:, None]) if len(self.rewards) == 1 else self._stage_rewards(chunk, False)
        checks = torch.stack(self._run.checks).flatten() if self._run is not None and self._run.checks else stage.new_zeros(0)
        host = torch.cat([checks.to(torch.float64), torch.isfinite(rewards).all().to(torch.float64)[None],
                          stage.flatten().to(torch.float64)]).cpu().numpy()  # the one host copy
        self._check_flags(host[: checks.numel()], bool(host[checks.numel()]))
        stage_host = host[checks.numel() + 1:].reshape(n, len(self.rewards))
        if not np.isfinite(stage_host).all():
            raise ValueError("a stage reward returned non-finite values (NaN/inf) for the executed chunk; rewards must be finite")
        self.tracker.update(stage_host)
        return SteerOutput(chunk, samples, rewards)
