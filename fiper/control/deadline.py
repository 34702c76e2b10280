"""Hard deadlines in the control loop: the policy's ``encode`` and ``sample`` (:class:`DeadlinePolicy`) and the
monitor's ``step`` (:class:`DeadlineMonitor`). A call that has not returned in time raises
:class:`DeadlineExceeded` instead of blocking, so ``MonitoredPolicy`` answers a hung driver, model, device or
score with its fail-safe path (the fallback) while the call is still running.

Both run their calls through one :class:`DeadlineWorker`: one daemon worker thread (a hung call never blocks the
interpreter's exit). A call that overran is abandoned, not killed: its result is discarded, and every later call
is refused at once until it has returned, so the wrapped object never runs two calls at a time.
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any

import torch

POLICY_FIX = ("give the policy more time (a larger deadline_ms), or find what blocks it (a driver, a device, a lock); "
              "the fallback acts meanwhile")
MONITOR_FIX = ("give the monitor more time (a larger deadline_ms), or find what blocks its scores (a lock, a remote "
               "call, a device; verdict.score_ms times each score); the fallback acts meanwhile")


class DeadlineExceeded(RuntimeError):
    """A call did not return within its deadline (or an earlier one that overran has not returned yet)."""


class DeadlineWorker:
    """Runs the calls of one ``owner`` ('policy', 'monitor') on a daemon thread, each within ``deadline_ms``.

    ``reset`` is the owner's reset: :meth:`reset` runs it now, or, while a call that overran is still running (it
    may still use the owner's state), before the next call once that one has returned. ``reset_after_overrun``:
    every call that overran makes that reset due, because the abandoned call may have left the owner's state half
    updated (the monitor's windows).
    """

    def __init__(self, owner: str, deadline_ms: float, fix: str, reset: Callable[[], None], *,
                 reset_after_overrun: bool = False, calls: str = "call"):
        if isinstance(deadline_ms, bool) or not isinstance(deadline_ms, (int, float)) or not math.isfinite(deadline_ms) \
                or deadline_ms <= 0:
            raise ValueError(f"deadline_ms={deadline_ms!r} is invalid: give a positive, finite number of milliseconds "
                             f"for each {calls} of the {owner}")
        self.owner, self.deadline_ms, self.fix = owner, float(deadline_ms), fix
        self._reset, self.reset_after_overrun = reset, reset_after_overrun
        self.overruns = 0  # calls that did not return in time
        self._pending: Future | None = None  # the call that overran, until it returns
        self._pending_what = ""
        self.reset_due = False
        self.untimed = False  # warm_up: calls run on the worker as usual but are waited for without a deadline
        self._start()

    def _start(self) -> None:
        # the thread holds the queue, not this worker: once the wrapper is gone, __del__ ends it
        self._jobs = queue.SimpleQueue()
        self._thread = threading.Thread(target=_serve, args=(self._jobs,), name=f"fiper-{self.owner}-deadline", daemon=True)
        self._thread.start()

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (copied, or sent to another process) without its thread: the copy starts one of its own. A copy
        taken while a call that overran still runs resets its owner before its first call (the copied state may be
        half updated)."""
        state = {k: v for k, v in self.__dict__.items() if k not in ("_jobs", "_thread", "_pending")}
        state["reset_due"] = self.reset_due or self.busy
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._pending, self._pending_what = None, ""
        self._start()

    def __del__(self) -> None:
        jobs = getattr(self, "_jobs", None)
        if jobs is not None:
            jobs.put(None)  # the thread ends after any call still running

    @property
    def busy(self) -> bool:
        """Whether a call that overran is still running."""
        if self._pending is not None and self._pending.done():
            self._pending = None  # its result or error belongs to a decision that already ended in the fallback
        return self._pending is not None

    def reset(self) -> None:
        """The owner's reset, now, or once a call that overran has returned."""
        if self.busy:
            self.reset_due = True
            return
        self.reset_due = False
        self._reset()

    def call(self, what: str, fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        """``fn(*args, **kwargs)`` on the worker: its result or error within the deadline, else DeadlineExceeded."""
        if self.busy:
            raise DeadlineExceeded(f"the {self.owner}'s {self._pending_what} that overran its {self.deadline_ms:g} ms "
                                   f"deadline has not returned yet, so {what} is not called (one call at a time); {self.fix}")
        if self.reset_due:
            self.reset_due = False
            self._reset()
        future: Future = Future()
        modes = (torch.is_grad_enabled(), torch.is_inference_mode_enabled(), torch.get_num_threads(),
                 torch.cuda.current_device() if torch.cuda.is_initialized() else None)
        self._jobs.put((future, fn, args, kwargs, modes))
        try:
            return future.result(timeout=None if self.untimed else self.deadline_ms / 1000.0)
        except TimeoutError:
            if future.done():  # returned just as the wait ended
                return future.result()
            self._pending, self._pending_what = future, what
            self.overruns += 1
            self.reset_due = self.reset_due or self.reset_after_overrun
            raise DeadlineExceeded(f"the {self.owner}'s {what} did not return within its deadline of "
                                   f"{self.deadline_ms:g} ms; {self.fix}") from None


def _serve(jobs: queue.SimpleQueue) -> None:
    """Run queued calls in the caller's autograd / inference mode, CPU threads and CUDA device (all per thread
    in torch); a CUDA tensor result is waited for here, so a device that hangs shows as a call that overran
    (the caller's host copy then reads it at once). None ends the thread."""
    while (job := jobs.get()) is not None:
        future, fn, args, kwargs, (grad, inference, threads, device) = job
        if not future.set_running_or_notify_cancel():
            continue
        try:
            if torch.get_num_threads() != threads:
                torch.set_num_threads(threads)
            if device is not None:
                torch.cuda.set_device(device)
            with torch.inference_mode(inference), torch.set_grad_enabled(grad):
                out = fn(*args, **kwargs)
                if isinstance(out, torch.Tensor) and out.is_cuda:
                    torch.cuda.current_stream(out.device).synchronize()
        except BaseException as err:  # handed to the caller, who records it as the decision's fault
            future.set_exception(err)
        else:
            future.set_result(out)
        del job, future, fn, args, kwargs  # hold nothing of the owner between calls
        out = None


class _UnderDeadline:
    """What DeadlinePolicy and DeadlineMonitor share: every other attribute is the wrapped object's
    (``WRAPPED`` names the attribute holding it), and the worker's deadline, overruns and busy state."""

    WRAPPED = ""
    _deadline: DeadlineWorker

    def __getattr__(self, name: str) -> Any:
        if name in (type(self).WRAPPED, "_deadline"):  # not set yet (during unpickling or a failed __init__)
            raise AttributeError(name)
        return getattr(getattr(self, type(self).WRAPPED), name)

    @property
    def deadline_ms(self) -> float:
        return self._deadline.deadline_ms

    @property
    def overruns(self) -> int:
        """Calls that did not return in time."""
        return self._deadline.overruns

    @property
    def busy(self) -> bool:
        """Whether a call that overran is still running (every call is refused meanwhile)."""
        return self._deadline.busy

    @contextmanager
    def untimed(self) -> Iterator[None]:
        """Calls inside wait for their result with no deadline (``MonitoredPolicy.warm_up``: a process's first calls)."""
        self._deadline.untimed = True
        try:
            yield
        finally:
            self._deadline.untimed = False


class DeadlinePolicy(_UnderDeadline):
    """Wraps a GenerativePolicy so that ``encode`` and ``sample`` each return within ``deadline_ms`` or raise
    DeadlineExceeded; every other attribute is the wrapped policy's (its shapes, fingerprint, device)."""

    WRAPPED = "policy"

    def __init__(self, policy: Any, deadline_ms: float):
        if isinstance(policy, DeadlinePolicy):
            raise ValueError(f"the policy is already under a deadline of {policy.deadline_ms:g} ms: wrap the bare policy "
                             "once, DeadlinePolicy(policy, deadline_ms)")
        self.policy = policy
        self._deadline = DeadlineWorker("policy", deadline_ms, POLICY_FIX, self._reset_policy,
                                        calls="encode and sample call")

    def fingerprint(self) -> str | None:
        """The wrapped policy's weights: a monitor fitted for the bare policy serves it with a deadline."""
        from fiper.monitor.identity import policy_fingerprint

        return policy_fingerprint(self.policy)

    def _reset_policy(self) -> None:
        self.policy.reset()

    def reset(self) -> None:
        """The wrapped policy's reset, now, or once a call that overran has returned (it may still use the policy)."""
        self._deadline.reset()

    def encode(self, obs: Any) -> torch.Tensor:
        return self._deadline.call("encode", self.policy.encode, (obs,), {})

    def sample(self, embedding: torch.Tensor, num_samples: int, **kwargs: Any) -> torch.Tensor:
        return self._deadline.call("sample", self.policy.sample, (embedding, num_samples), kwargs)


class DeadlineMonitor(_UnderDeadline):
    """Wraps a FailureMonitor so that ``step`` returns within ``deadline_ms`` or raises DeadlineExceeded (a score
    that blocks on a lock, a remote call or a device); every other attribute is the wrapped monitor's.

    A step that overran is abandoned, and its effect on the monitor's state is unknown (some scores' histories
    and the windows may hold that decision, others not). So once it has returned, the next ``step`` first resets
    the monitor: monitoring resumes with fresh windows and score histories and the decision count from 0, as
    at an episode's start. ``reset()`` while it runs is deferred to the same point, never run beside it.
    """

    WRAPPED = "monitor"

    def __init__(self, monitor: Any, deadline_ms: float):
        if isinstance(monitor, DeadlineMonitor):
            raise ValueError(f"the monitor is already under a deadline of {monitor.deadline_ms:g} ms: wrap the bare "
                             "monitor once, DeadlineMonitor(monitor, deadline_ms)")
        if not all(callable(getattr(monitor, m, None)) for m in ("step", "reset")) or isinstance(monitor, DeadlinePolicy):
            raise TypeError(f"DeadlineMonitor wraps a FailureMonitor (load_monitor(...) or fit_monitor(...)), got "
                            f"{type(monitor).__name__}; a policy goes under DeadlinePolicy(policy, deadline_ms)")
        self.monitor = monitor
        self._deadline = DeadlineWorker("monitor", deadline_ms, MONITOR_FIX, self._reset_monitor,
                                        reset_after_overrun=True, calls="step")

    def _reset_monitor(self) -> None:
        self.monitor.reset()

    def reset(self) -> None:
        """The monitor's reset, now, or once a step that overran has returned."""
        self._deadline.reset()

    def to(self, device: Any) -> DeadlineMonitor:
        """Move the score models (refused while a step that overran may still be using them)."""
        if self.busy:
            raise DeadlineExceeded(f"the monitor's step that overran its {self.deadline_ms:g} ms deadline has not "
                                   f"returned yet, so its scores are not moved; {MONITOR_FIX}")
        self.monitor.to(device)
        return self

    def step(self, embedding: Any, samples: Any, **kwargs: Any) -> Any:
        return self._deadline.call("step", self.monitor.step, (embedding, samples), kwargs)
