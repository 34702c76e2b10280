"""MonitoredPolicy: the policy wrapper that runs in the control loop.

Per decision (every ``n_action_steps`` env steps)::

    obs history ─► encode ─► z ─► sample B chunks (guided while steering) ─► monitor.step
        ─► response: none → execute a chunk of the batch (first sample, or the medoid)
                     steer → execute the best steered particle (if steering raises: the fallback)
                     fallback:<name> → fallback actions from now on, until reset() / resume()
        ─► queue n_action_steps actions; between decisions act() checks the observation and pops the queue

Every fault (a malformed or non-finite observation or measured position at any step, an exception in encode,
sample or the monitor, a fail-safe verdict, a non-finite chunk, a time-budget overrun) is a recorded fail-safe
alarm answered by the fallback; without a fallback ``act`` raises :class:`FailSafeError`, and again at every later
call until ``reset()`` or ``resume()`` (a loop that catches it and goes on never gets a policy action back). No non-finite action
is ever returned, and once ``bind_env`` has seen the env's action space none outside it (clipped, and counted
in ``last_info['clipped']``). Tensors stay on the policy's device until one copy per plain decision brings the
executed chunk, embedding and batch to the host for the monitor: one host synchronisation, none inside sampling.
"""

from __future__ import annotations

import warnings
from collections import deque
from collections.abc import Mapping
from contextlib import ExitStack
from typing import Any

import numpy as np
import torch

from fiper.env_io import clip_to_space, observation_dict
from fiper.control.decision import Decision, HostCopy, decision_info, failsafe_verdict, recorded_arrays, steer_stage
from fiper.control.failsafe import FailSafeError, error_text, fallback_error, no_fallback_error, still_stopped
from fiper.control.history import ObsHistory, snapshot
from fiper.control.timing import PhaseTimer
from fiper.interventions import FallbackContext, GradedResponse
from fiper.interventions.context import refuse_effort, uses_positions
from fiper.interventions.fallbacks import check_action
from fiper.interventions.layout import check_steering_layout
from fiper.interventions.velocity_path import velocity_frame
from fiper.monitor import FailureMonitor, PolicyIdentity, MonitorVerdict
from fiper.monitor.decision_data import DEFAULT_NUM_SAMPLES
from fiper.protocol import GenerativePolicy, output_problem

EXECUTED_CHUNKS = ("first", "medoid")  # which chunk of the batch a decision executes


def medoid_index(samples: torch.Tensor) -> torch.Tensor:
    """Index of the chunk with the smallest summed distance to the others, per batch: (N, B, H, A) -> (N,)."""
    flat = samples.flatten(2)
    return torch.cdist(flat, flat).sum(-1).argmin(-1)


def _warn(note: str) -> None:
    warnings.warn(note.removeprefix("note: "), UserWarning, stacklevel=4)


class MonitoredPolicy:
    """Wraps a GenerativePolicy with a fitted FailureMonitor and an optional graded response.

    Use ``act(obs) -> action`` from any control loop (``reset()`` per episode), or
    :func:`fiper.control.loop.run_episode` with a gymnasium environment. ``obs`` is a dict, or
    one array that the policy reads as 'obs'. ``monitor=None`` runs the bare policy with the
    same bookkeeping and fault checks (the baseline of the runtime benchmark). With
    ``time_budget_ms`` an overrun is a fault when ``overrun_fallback`` (the default), else only
    reported. A monitor fitted for other weights of the same shapes is refused unless
    ``allow_other_policy`` (as in ``load_monitor``).
    """

    def __init__(
        self,
        policy: GenerativePolicy,
        monitor: FailureMonitor | None,
        *,
        response: GradedResponse | None = None,
        context: FallbackContext | None = None,
        num_samples: int | None = None,
        execute: str = "first",
        time_budget_ms: float | None = None,
        overrun_fallback: bool = True,
        seed: int = 0,
        keep_decisions: bool = True,
        allow_other_policy: bool = False,
    ):
        if execute not in EXECUTED_CHUNKS:
            raise ValueError(f"execute must be one of {EXECUTED_CHUNKS}, got {execute!r}")
        if monitor is not None:
            if not monitor.calibrated:
                raise ValueError("the monitor is not calibrated: run `python -m launch.calibrate` (or monitor.calibrate) first")
            monitor.identity.check_matches(PolicyIdentity.of(policy, monitor.identity.num_samples),
                                           allow_other_policy=allow_other_policy)
            num_samples = monitor.identity.num_samples if num_samples is None else num_samples
            if num_samples != monitor.identity.num_samples:
                raise ValueError(f"num_samples={num_samples} but the monitor was fitted on batches of B={monitor.identity.num_samples}")
            monitor.to("cpu")  # scored on the host from the decision's one copy (see _host_copy)
        if response is not None and response.fallback is not None and context is None:
            raise ValueError("a fallback needs a FallbackContext (action layout and history); pass context=")
        if context is not None and getattr(context, "action_dim", policy.action_dim) != policy.action_dim:
            raise ValueError(f"FallbackContext(action_dim={context.action_dim}) but the policy's actions have "
                             f"{policy.action_dim} entries: give FallbackContext(action_dim={policy.action_dim}, ...) with "
                             "position_dims and gripper_dims indexing the policy's action")
        if uses_positions(response):
            refuse_effort(getattr(context, "action_mode", None), f"the fallback {getattr(response.fallback, 'name', type(response.fallback).__name__)!r}")
        if time_budget_ms is not None and not float(time_budget_ms) > 0:
            raise ValueError(f"time_budget_ms={time_budget_ms!r} is invalid: give a positive number of milliseconds, or None")
        self.policy, self.monitor, self.response, self.context = policy, monitor, response, context
        check_steering_layout(response, context, "the response's steering", note=_warn)  # unless a launcher did
        if response is not None and hasattr(response, "bind_context"):
            response.bind_context(context)  # a response that reads the executed path between decisions
        self.num_samples = int(num_samples or DEFAULT_NUM_SAMPLES)  # without a monitor: the B a replay draws
        self.execute, self.time_budget_ms, self.overrun_fallback = execute, time_budget_ms, overrun_fallback
        self.history = ObsHistory(list(policy.obs_shapes), policy.n_obs_steps, shapes=policy.obs_shapes)
        self.timer = PhaseTimer(policy.device)
        self.generator = torch.Generator(device=policy.device)
        self.seed, self.keep_decisions = seed, keep_decisions
        self.action_space: Any = None  # the env's, once bind_env has seen it: actions are clipped to it
        self._binds_seen, self._stale_binds = 0, None  # the steering's bind count at the last act / when an episode ended
        self.reset()

    @property
    def has_fallback(self) -> bool:
        return self.response is not None and self.response.fallback is not None

    # ------------------------------------------------------------------ episode life cycle
    def reset(self, seed: int | None = None) -> None:
        """New episode: clear history, queue, monitor windows, intervention state; reseed sampling."""
        if getattr(self, "env_step", 0):  # an episode that acted ends: the scene bound before its last act is stale
            self._stale_binds = self._binds_seen
        self.seed = self.seed if seed is None else seed
        self.generator.manual_seed(int(self.seed))
        self.policy.reset()
        self.history.reset()
        self.queue: deque[np.ndarray] = deque()
        self.decisions: list[Decision] = []
        self.n_decisions = 0
        self.env_step = 0
        self.fallback_active = False
        self._stage: int | None = None  # the steering's stage at the decision being made (None: read it when recording)
        self.last_info: dict[str, Any] = {}
        self._last_obs: Mapping[str, Any] = {}  # the newest observation that passed the checks
        self._stopped: FailSafeError | None = None  # a fail-safe alarm without a fallback: act() refuses until reset / resume
        for part in (self.monitor, self.response, self.context):
            if part is not None:
                part.reset()

    def bind_env(self, env: Any) -> None:
        """After ``env.reset``: actions are clipped to the env's action space from now on, and scene-aware parts of
        the response read the new episode's scene."""
        space = getattr(env, "action_space", None)
        self.action_space = space if tuple(getattr(space, "shape", None) or ()) == (self.policy.action_dim,) else None
        if self.response is not None:
            self.response.bind(env)

    def warm_up(self, obs: Any, env: Any = None) -> None:
        """One decision on ``obs`` (an env's first observation) with no deadline, then a fresh episode: a process's first
        calls (allocations, kernel choice) take far longer than later ones, and under DeadlinePolicy / DeadlineMonitor
        the first decision of a fresh process would end in the fallback. Call ``reset`` and ``bind_env`` as usual after."""
        with ExitStack() as stack:
            for part in (self.policy, self.monitor):
                if callable(getattr(type(part), "untimed", None)):
                    stack.enter_context(part.untimed())
            if env is not None:
                self.bind_env(env)
            self.act(obs)
        self.reset()

    def resume(self) -> None:
        """Leave a fallback and hand control back to the policy (its next act() re-plans); the response starts
        afresh but keeps what it recorded this episode (``labels``, ``events``), as ``decisions`` keeps the decisions."""
        self.fallback_active = False
        self._stopped = None
        self.queue.clear()
        if self.response is not None:
            kept = {k: getattr(self.response, k, None) for k in ("labels", "events")}
            self.response.reset()
            for key, old in kept.items():  # a record that reset() started anew gets the episode's so far in front
                if isinstance(old, list) and (new := getattr(self.response, key, None)) is not old:
                    setattr(self.response, key, old + list(new or []))

    def _restart(self) -> None:
        """The response brought the robot back to a state the policy knows: replan from a fresh observation
        history and fresh monitor windows (the response keeps its own record, e.g. the retries spent)."""
        self.fallback_active = False
        self.queue.clear()
        self.history.reset()
        self.policy.reset()
        if self.monitor is not None:
            self.monitor.reset()
        self.response.resumed()

    # ------------------------------------------------------------------ control
    def act(self, obs: Any) -> np.ndarray:
        """The (finite) action for this environment step; ``last_info`` says what happened."""
        if self._stopped is not None:  # a loop that caught the FailSafeError and went on gets no policy action back
            raise still_stopped(self._stopped)
        fault = ""
        try:
            seen = snapshot(observation_dict(obs))  # one copy per step, read by the history and the fallback
            self.history.push(seen, owned=True)
            if self.context is not None:  # the fallback's measured position, which the policy may not read
                self.context.agent_position(seen)
            self._last_obs = seen
        except Exception as err:  # a malformed or non-finite observation, at a decision or between decisions
            fault = f"invalid observation: {error_text(err)}"
        info: dict[str, Any] = {"decision": False}
        if fault and not self.fallback_active:
            info = decision_info(self._fault(fault, timing={}, source="observation"))
        elif not self.fallback_active and not self.queue:
            info = decision_info(self._decide())
        if fault:
            info["fault"] = fault
        if self.fallback_active:
            action = self._fallback_action(fault)
            if hasattr(self.response, "ready_to_resume") and self.response.ready_to_resume(fault):
                self._restart()
        else:
            action = self.queue.popleft()  # finite: checked with its chunk at the decision
        action, excess = clip_to_space(action, self.action_space)
        if excess:
            info["clipped"] = excess  # what the env executes; the decision's chunk keeps what was commanded
        info.update(fallback_active=self.fallback_active, env_step=self.env_step)
        if self.context is not None:
            self.context.record(action, None if fault else self._last_obs)
        self.last_info = info
        self.env_step += 1
        self._binds_seen = getattr(getattr(self.response, "steering", None), "binds", 0)
        return action

    def _fallback_action(self, fault: str) -> np.ndarray:
        """The fallback's checked action from the newest valid observation, or FailSafeError."""
        name = repr(self.response.fallback_label.removeprefix("fallback:"))
        try:
            return check_action(self.response.fallback_action(self._last_obs, self.context), self.context, f"the fallback {name}")
        except Exception as err:
            raise fallback_error(name, self.env_step, fault, err) from err

    @torch.no_grad()
    def _decide(self) -> Decision:
        timer, policy, response = self.timer, self.policy, self.response
        timer.start()
        try:
            z = policy.encode(self.history.tensors("cpu"))  # the policy uploads them without waiting
        except Exception as err:
            return self._fault(f"the policy's encode raised {error_text(err)}")
        bad = output_problem(z, "encode", "(N, D)", (1, policy.embedding_dim), policy.device)
        if bad:
            return self._fault(bad)
        timer.mark("encode")
        self._stage = steer_stage(response)  # before steering moves the tracker on: the program this decision steers by
        steering = response is not None and response.mode == "steer" and response.steering is not None
        steer_out, steer_error = self._steer(z) if steering else (None, "")
        if steer_out is not None:
            samples = steer_out.samples
        else:
            try:
                samples = policy.sample(z, self.num_samples, generator=self.generator)
            except Exception as err:
                return self._fault(f"the policy's sample raised {error_text(err)}", z=z)
            bad = output_problem(samples, "sample", "(N, B, H, A)", (1, self.num_samples, policy.horizon, policy.action_dim),
                             policy.device)
            if bad:
                return self._fault(bad, z=z)
        timer.mark("sample")
        presampled = steer_out is not None
        host = self._host_copy(steer_out.chunk[0] if presampled else self._plain_chunk(samples), z, samples)
        verdict = None
        if self.monitor is not None:
            skip = response.excluded_scores if response is not None else ()
            try:
                seen = {"observation": self._last_obs} if "observation" in self.monitor.needs else {}  # raw-observation scores
                verdict = self.monitor.step(host.embedding, host.samples, skip=skip, **seen)
            except Exception as err:  # monitor.step never raises by contract; a broken one still must not pass
                return self._fault(f"the monitor raised {error_text(err)}", z=z, samples=samples)
        timer.mark("monitor")
        if verdict is not None and verdict.failsafe:
            return self._fault("", z=z, samples=samples, verdict=verdict)
        label = self._respond(verdict)
        if label == "steer" and steer_out is None and not steer_error:  # the alarm decision: re-sample with guidance
            steer_out, steer_error = self._steer(z)
        if steer_error:  # a failed steering run hands over to the fallback, never executes blind
            return self._fault(steer_error, z=z, samples=samples, verdict=verdict)
        if label.startswith("fallback"):
            timer.mark("intervention")
            return self._record(host.embedding, host.samples, None, verdict, label, self._timing())
        if label == "steer" and not presampled:  # steered at the alarm: a second, steered decision's copy
            executed = self._host_copy(steer_out.chunk[0], None, None).chunk
        elif presampled and label != "steer":  # steering released: the plain rule on the steered batch
            executed = self._host_copy(self._plain_chunk(samples), None, None).chunk
        else:
            executed = host.chunk
        timer.mark("intervention")
        timing = self._timing()
        if not np.isfinite(executed).all():
            return self._fault(f"the chunk to execute holds {int((~np.isfinite(executed)).sum())} non-finite actions",
                               z=z, samples=samples, verdict=verdict, timing=timing)
        if timing["overrun"] and self.overrun_fallback:
            return self._fault(f"the decision took {timing['total']:.1f} ms, over the time budget of {self.time_budget_ms} ms",
                               z=z, samples=samples, verdict=verdict, timing=timing)
        self.queue.extend(executed[: policy.n_action_steps].astype(np.float64))
        return self._record(host.embedding, host.samples, executed, verdict, label, timing)

    def _plain_chunk(self, samples: torch.Tensor) -> torch.Tensor:
        """The chunk (H, A) a plain decision executes, chosen on the device: the first sample or the medoid."""
        if self.execute == "medoid":
            return samples[0].index_select(0, medoid_index(samples)[:1])[0]  # a device index: no host read
        return samples[0, 0]

    def _host_copy(self, chunk: torch.Tensor, z: torch.Tensor | None, samples: torch.Tensor | None) -> HostCopy:
        """The decision's one device-to-host copy: the chunk, and the embedding and batch when the monitor
        or the recorder reads them, packed into one float32 tensor."""
        parts = [chunk.reshape(-1)]
        keep = z is not None and samples is not None and (self.monitor is not None or self.keep_decisions)
        if keep:
            parts += [z[0].reshape(-1), samples[0].reshape(-1)]
        flat = torch.cat([p.float() for p in parts]).cpu().numpy()  # the host synchronisation
        n_chunk = chunk.numel()
        if not keep:
            return HostCopy(flat.reshape(chunk.shape), None, None)
        n_z = z[0].numel()
        return HostCopy(flat[:n_chunk].reshape(chunk.shape), flat[n_chunk:n_chunk + n_z].reshape(z[0].shape),
                        flat[n_chunk + n_z:].reshape(samples[0].shape))

    def _timing(self) -> dict[str, Any]:
        """Phase times so far and whether they overran the budget (call after the host sync)."""
        timing: dict[str, Any] = self.timer.results_ms()
        timing["overrun"] = self.time_budget_ms is not None and timing["total"] > self.time_budget_ms
        return timing

    def _fault(self, reason: str, *, z: torch.Tensor | None = None, samples: torch.Tensor | None = None,
               verdict: MonitorVerdict | None = None, timing: dict[str, Any] | None = None, source: str = "policy") -> Decision:
        """A fail-safe alarm: record it, hand over to the fallback, or raise FailSafeError (naming ``source``) without one."""
        if verdict is None or reason:
            t = verdict.decision if verdict is not None else (self.monitor.decision if self.monitor is not None else self.n_decisions)
            verdict = failsafe_verdict(reason, verdict, t)
        label = self.response.fail_safe() if self.has_fallback else "none"
        decision = self._record(z, samples, None, verdict, label, timing if timing is not None else self._timing())
        if not self.has_fallback:
            self.last_info = {**decision_info(decision), "fallback_active": False, "env_step": self.env_step}
            self._stopped = no_fallback_error(self.env_step, verdict.reason, source)
            raise self._stopped
        return decision

    def _record(self, z: torch.Tensor | np.ndarray | None, samples: torch.Tensor | np.ndarray | None, executed: np.ndarray | None,
                verdict: MonitorVerdict | None, label: str, timing: dict[str, Any]) -> Decision:
        """Keep the decision (host copies of z and the batch when recording); a fallback label latches it.

        ``executed`` None: no chunk of the policy runs (a fallback, or a fault); queued actions are dropped.
        """
        policy, keep = self.policy, self.keep_decisions  # recording copies embedding and batch to the host too
        if executed is None:
            executed = np.full((policy.horizon, policy.action_dim), np.nan, np.float32)
            self.queue.clear()
        self.fallback_active = label.startswith("fallback")
        embedding = batch = np.zeros(0)
        if keep:
            embedding, batch = recorded_arrays(z, samples, policy.embedding_dim, (self.num_samples, policy.horizon, policy.action_dim))
        overrun = bool(timing.pop("overrun", False))
        stage = self._stage if self._stage is not None else steer_stage(self.response)  # a fault before the decision began
        self._stage = None
        decision = Decision(self.env_step, embedding, batch, executed, verdict, label, label == "steer", timing, overrun, stage)
        self.n_decisions += 1
        if keep:
            self.decisions.append(decision)
        return decision

    def _steer(self, z: torch.Tensor) -> tuple[Any, str]:
        """(steered output, ""), or (None, the error) when steering raised and a fallback can take over."""
        try:
            binds = getattr(self.response.steering, "binds", None)  # a Steering's; a guidance of one's own may keep none
            if binds is not None and binds == self._stale_binds and self.response.steering.reads_scene:
                raise RuntimeError("the steering's reward reads the scene and was not bound since the last episode, so it "
                                   "would steer around that episode's obstacles: call agent.bind_env(env) after every env.reset")
            steering = self.response.steering
            frame = None  # velocity actions: the paths start at the measured position (one copy of k numbers to the device)
            if getattr(getattr(steering, "config", None), "velocity_actions", False):
                frame = velocity_frame(self.context, self._last_obs, self.policy.device)
            kw = {"frame": frame} if frame is not None else {}  # a guidance of one's own may take no frame
            return steering.steer(self.policy, z, self.num_samples, generator=self.generator, **kw), ""
        except Exception as err:  # a user's or a VLM's reward program may fail at run time
            if self.response.fallback is None:
                raise
            return None, f"steering raised {error_text(err)}"

    def _respond(self, verdict: MonitorVerdict | None) -> str:
        if self.response is None:
            return "none"
        if verdict is None:  # no monitor: a response that starts steered (start='steer') steers; nothing sets one off
            return "steer" if self.response.mode == "steer" and self.response.steering is not None else "none"
        return self.response.step(verdict.alarm, verdict.combined_ratio)
