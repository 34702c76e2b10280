"""MonitoredPolicy: the policy wrapper that runs in the control loop.

Per decision (every ``n_action_steps`` env steps)::

    obs history ─► encode ─► z ─► sample B chunks (guided while steering) ─► monitor.step
        ─► response: none → execute a chunk of the batch (first sample, or the medoid)
                     steer → execute the best steered particle (if steering raises: the fallback)
                     fallback:<name> → fallback actions from now on, until reset() / resume()
        ─► queue n_action_steps actions; between decisions act() only pops the queue

All tensors stay on the policy's device; the host reads only the alarm decision (inside
monitor.step) and the executed chunk.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from fiper.control.history import ObsHistory
from fiper.control.timing import PhaseTimer
from fiper.interventions import FallbackContext, GradedResponse
from fiper.interventions.context import to_numpy
from fiper.monitor import FailureMonitor, PolicyIdentity, StepReport
from fiper.protocol import GenerativePolicy

SELECTIONS = ("first", "medoid")


@dataclass
class Decision:
    """Everything about one decision, as the recorder stores it."""

    env_step: int
    embedding: np.ndarray
    samples: np.ndarray
    executed: np.ndarray  # (H, A) chunk queued for execution (NaN while a fallback acts)
    report: StepReport | None
    intervention: str
    steered: bool
    timing_ms: dict[str, float] = field(default_factory=dict)
    overrun: bool = False


def medoid_index(samples: torch.Tensor) -> torch.Tensor:
    """Index of the chunk with the smallest summed distance to the others, per batch: (N, B, H, A) -> (N,)."""
    flat = samples.flatten(2)
    return torch.cdist(flat, flat).sum(-1).argmin(-1)


class MonitoredPolicy:
    """Wraps a GenerativePolicy with a fitted FailureMonitor and an optional graded response.

    Use ``act(obs) -> action`` from any control loop (``reset()`` per episode), or
    :func:`fiper.control.loop.run_episode` with a gymnasium environment. ``monitor=None`` runs
    the bare policy with the same bookkeeping (the baseline of the runtime benchmark).
    """

    def __init__(
        self,
        policy: GenerativePolicy,
        monitor: FailureMonitor | None,
        *,
        response: GradedResponse | None = None,
        context: FallbackContext | None = None,
        num_samples: int | None = None,
        select: str = "first",
        time_budget_ms: float | None = None,
        overrun_fallback: bool = False,
        seed: int = 0,
        keep_decisions: bool = True,
    ):
        if select not in SELECTIONS:
            raise ValueError(f"select must be one of {SELECTIONS}, got {select!r}")
        if monitor is not None:
            if not monitor.calibrated:
                raise ValueError("the monitor is not calibrated: run `python -m launch.calibrate` (or monitor.calibrate) first")
            monitor.identity.check_matches(PolicyIdentity.of(policy, monitor.identity.num_samples))
            num_samples = monitor.identity.num_samples if num_samples is None else num_samples
            if num_samples != monitor.identity.num_samples:
                raise ValueError(f"num_samples={num_samples} but the monitor was fitted on batches of B={monitor.identity.num_samples}")
            monitor.to(policy.device)
        if response is not None and response.fallback is not None and context is None:
            raise ValueError("a fallback needs a FallbackContext (action layout and history); pass context=")
        self.policy, self.monitor, self.response, self.context = policy, monitor, response, context
        self.num_samples = int(num_samples or 32)
        self.select, self.time_budget_ms, self.overrun_fallback = select, time_budget_ms, overrun_fallback
        self.history = ObsHistory(list(policy.obs_shapes), policy.n_obs_steps)
        self.timer = PhaseTimer(policy.device)
        self.generator = torch.Generator(device=policy.device)
        self.seed, self.keep_decisions = seed, keep_decisions
        self.reset()

    # ------------------------------------------------------------------ episode life cycle
    def reset(self, seed: int | None = None) -> None:
        """New episode: clear history, queue, monitor windows, intervention state; reseed sampling."""
        self.seed = self.seed if seed is None else seed
        self.generator.manual_seed(int(self.seed))
        self.policy.reset()
        self.history.reset()
        self.queue: deque[np.ndarray] = deque()
        self.decisions: list[Decision] = []
        self.env_step = 0
        self.fallback_active = False
        self.last_info: dict[str, Any] = {}
        for part in (self.monitor, self.response, self.context):
            if part is not None:
                part.reset()

    def bind_env(self, env: Any) -> None:
        """After ``env.reset``: lets scene-aware parts of the response read the new episode's scene."""
        if self.response is not None:
            self.response.bind(env)

    def resume(self) -> None:
        """Leave a fallback and hand control back to the policy (its next act() re-plans)."""
        self.fallback_active = False
        self.queue.clear()
        if self.response is not None:
            self.response.reset()

    # ------------------------------------------------------------------ control
    def act(self, obs: Mapping[str, Any]) -> np.ndarray:
        """The action for this environment step; ``last_info`` says what happened."""
        self.history.push(obs)
        info: dict[str, Any] = {"decision": False}
        if not self.fallback_active and not self.queue:
            decision = self._decide()
            info = self._decision_info(decision)
        if self.fallback_active:
            action = to_numpy(self.response.fallback_action(obs, self.context))  # also a tensor on any device
        else:
            action = self.queue.popleft()
        info.update(fallback_active=self.fallback_active, env_step=self.env_step)
        if self.context is not None:
            self.context.record(action, obs)
        self.last_info = info
        self.env_step += 1
        return action

    @torch.no_grad()
    def _decide(self) -> Decision:
        timer, policy, response = self.timer, self.policy, self.response
        timer.start()
        z = policy.encode(self.history.tensors(policy.device))
        timer.mark("encode")
        steering = response is not None and response.mode == "steer" and response.steering is not None
        steer_out, steer_error = self._steer(z) if steering else (None, "")
        samples = steer_out.samples if steer_out is not None else policy.sample(z, self.num_samples, generator=self.generator)
        timer.mark("sample")
        report = None
        if self.monitor is not None:
            skip = response.excluded_scores if response is not None else ()
            report = self.monitor.step(z[0], samples[0], skip=skip)
        timer.mark("monitor")
        label = self._respond(report)
        if label == "steer" and steer_out is None and not steer_error:  # the alarm decision: re-sample with guidance
            steer_out, steer_error = self._steer(z)
        if steer_error:  # a failed steering run hands over to the fallback, never executes blind
            label = response.fail_safe()
            report = replace(report, reason=f"{report.reason}; fail-safe: {steer_error}".lstrip("; ")) if report else report
        if steer_out is not None and label == "steer":
            chunk = steer_out.chunk[0]
        elif self.select == "medoid":
            chunk = samples[0, medoid_index(samples)[0]]
        else:
            chunk = samples[0, 0]
        timer.mark("intervention")
        executed = chunk.float().cpu().numpy()  # the decision's host sync
        timing = timer.results_ms()
        overrun = self.time_budget_ms is not None and timing["total"] > self.time_budget_ms
        if overrun and self.overrun_fallback and response is not None and response.fallback is not None:
            label = response.fail_safe()
        if label.startswith("fallback"):
            self.fallback_active = True
            executed = np.full_like(executed, np.nan)
        else:
            self.queue.extend(executed[: policy.n_action_steps].astype(np.float64))
        keep = self.keep_decisions  # recording copies embedding and batch to the host too
        decision = Decision(self.env_step, z[0].float().cpu().numpy() if keep else np.zeros(0),
                            samples[0].float().cpu().numpy() if keep else np.zeros(0), executed, report, label,
                            label == "steer", timing, overrun)
        if keep:
            self.decisions.append(decision)
        return decision

    def _steer(self, z: torch.Tensor) -> tuple[Any, str]:
        """(steered output, ""), or (None, the error) when steering raised and a fallback can take over."""
        try:
            return self.response.steering.steer(self.policy, z, self.num_samples, generator=self.generator), ""
        except Exception as err:  # a user's or a VLM's reward program may fail at run time
            if self.response.fallback is None:
                raise
            return None, f"steering raised {type(err).__name__}: {err}"

    def _respond(self, report: StepReport | None) -> str:
        if self.response is None or report is None:
            return "none"
        if report.failsafe and self.response.fallback is not None:
            return self.response.fail_safe()
        return self.response.step(report.alarm, report.combined_ratio)

    @staticmethod
    def _decision_info(decision: Decision) -> dict[str, Any]:
        report = decision.report
        return {
            "decision": True,
            "alarm": bool(report.alarm) if report else False,
            "reason": report.reason if report else "",
            "ratios": dict(report.ratios) if report else {},
            "intervention": decision.intervention,
            "timing_ms": decision.timing_ms,
            "overrun": decision.overrun,
        }
