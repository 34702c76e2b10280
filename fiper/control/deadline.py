"""A hard deadline on a policy's ``encode`` and ``sample``: a call that has not returned in time raises
:class:`DeadlineExceeded` instead of blocking, so ``MonitoredPolicy`` answers a hung driver, model or device
with its fail-safe path (the fallback) while the call is still running.

The calls run on one daemon worker thread (a hung call never blocks the interpreter's exit). A call that
overran is abandoned, not killed: its result is discarded, and every later call is refused at once until it
has returned, so the policy never runs two calls at a time.
"""

from __future__ import annotations

import math
import queue
import threading
from concurrent.futures import Future
from typing import Any

import torch

DEADLINE_FIX = ("give the policy more time (a larger deadline_ms), or find what blocks it (a driver, a device, a lock); "
                "the fallback acts meanwhile")


class DeadlineExceeded(RuntimeError):
    """A policy call did not return within its deadline (or an earlier one that overran has not returned yet)."""


class DeadlinePolicy:
    """Wraps a GenerativePolicy so that ``encode`` and ``sample`` each return within ``deadline_ms`` or raise
    DeadlineExceeded; every other attribute is the wrapped policy's (its shapes, fingerprint, device)."""

    def __init__(self, policy: Any, deadline_ms: float):
        if isinstance(deadline_ms, bool) or not isinstance(deadline_ms, (int, float)) or not math.isfinite(deadline_ms) \
                or deadline_ms <= 0:
            raise ValueError(f"deadline_ms={deadline_ms!r} is invalid: give a positive, finite number of milliseconds "
                             "for each encode and sample call")
        self.policy, self.deadline_ms = policy, float(deadline_ms)
        self.overruns = 0  # calls that did not return in time
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._pending: Future | None = None  # the call that overran, until it returns
        self._pending_what = ""
        self._reset_due = False
        self._worker = threading.Thread(target=self._serve, name="fiper-policy-deadline", daemon=True)
        self._worker.start()

    def __getattr__(self, name: str) -> Any:
        if name == "policy":  # not set yet (during unpickling or a failed __init__)
            raise AttributeError(name)
        return getattr(self.policy, name)

    def fingerprint(self) -> str | None:
        """The wrapped policy's weights: a monitor fitted for the bare policy serves it with a deadline."""
        from fiper.monitor.identity import policy_fingerprint

        return policy_fingerprint(self.policy)

    # ------------------------------------------------------------------ the policy's calls
    def reset(self) -> None:
        """The wrapped policy's reset, now, or once a call that overran has returned (it may still use the policy)."""
        if self._busy():
            self._reset_due = True
            return
        self._reset_due = False
        self.policy.reset()

    def encode(self, obs: Any) -> torch.Tensor:
        return self._call("encode", self.policy.encode, (obs,), {})

    def sample(self, embedding: torch.Tensor, num_samples: int, **kwargs: Any) -> torch.Tensor:
        return self._call("sample", self.policy.sample, (embedding, num_samples), kwargs)

    # ------------------------------------------------------------------ the worker
    def _busy(self) -> bool:
        if self._pending is not None and self._pending.done():
            self._pending = None  # its result or error belongs to a decision that already ended in the fallback
        return self._pending is not None

    def _call(self, what: str, fn: Any, args: tuple, kwargs: dict) -> Any:
        if self._busy():
            raise DeadlineExceeded(f"the policy's {self._pending_what} that overran its {self.deadline_ms:g} ms deadline has "
                                   f"not returned yet, so {what} is not called (one call at a time); {DEADLINE_FIX}")
        if self._reset_due:
            self._reset_due = False
            self.policy.reset()
        future: Future = Future()
        modes = (torch.is_grad_enabled(), torch.is_inference_mode_enabled(), torch.get_num_threads(),
                 torch.cuda.current_device() if torch.cuda.is_initialized() else None)
        self._jobs.put((future, fn, args, kwargs, modes))
        try:
            return future.result(timeout=self.deadline_ms / 1000.0)
        except TimeoutError:
            if future.done():  # returned just as the wait ended
                return future.result()
            self._pending, self._pending_what = future, what
            self.overruns += 1
            raise DeadlineExceeded(f"the policy's {what} did not return within its deadline of {self.deadline_ms:g} ms; "
                                   f"{DEADLINE_FIX}") from None

    def _serve(self) -> None:
        """Run queued calls in the caller's autograd / inference mode, CPU threads and CUDA device (all per thread
        in torch); a CUDA result is waited for here, so a device that hangs shows as a call that overran (the
        caller's host copy then reads it at once)."""
        while True:
            future, fn, args, kwargs, (grad, inference, threads, device) = self._jobs.get()
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
