"""What the wrapper raises when a fault has no safe action to answer it, and the fix it names."""

from __future__ import annotations

NO_FALLBACK_FIX = ("configure a fallback via MonitoredPolicy(..., response=GradedResponse(fallback=HoldPosition()), "
                   "context=FallbackContext(action_dim=..., position_dims=[...])) so the wrapper has a safe action to return")


class FailSafeError(RuntimeError):
    """A fault the wrapper cannot answer with a safe action (no fallback configured, or the fallback failed).

    The decision that raised it is already in ``decisions`` and ``last_info``. ``source`` says what to fix: the env's
    ``observation`` (a key missing, a wrong shape), the ``policy``, or the ``fallback`` (it gave no safe action).
    """

    def __init__(self, message: str, source: str = "policy"):
        super().__init__(message)
        self.source = source


def no_fallback_error(env_step: int, reason: str, source: str) -> FailSafeError:
    """A fail-safe alarm at ``env_step`` for ``reason`` with no fallback configured to answer it."""
    return FailSafeError(f"fail-safe alarm at env step {env_step}, {reason.removeprefix('fail-safe: ')}; "
                         f"no fallback is configured, so there is no safe action to return: {NO_FALLBACK_FIX}", source)


def still_stopped(first: FailSafeError) -> FailSafeError:
    """An act() after a fail-safe alarm that had no fallback: the agent stays stopped, never hands back a policy action."""
    return FailSafeError(f"the agent stopped at an earlier fail-safe alarm and has no fallback, so it returns no action until "
                         f"reset() (a new episode) or resume() (control handed back to the policy on purpose); the alarm: "
                         f"{first}", first.source)


def fallback_error(name: str, env_step: int, fault: str, err: BaseException) -> FailSafeError:
    """The fallback ``name`` gave no safe action at ``env_step`` (``fault``: this step's own fault, if any)."""
    cause = f" (this step: {fault})" if fault else ""
    return FailSafeError(f"the fallback {name} gave no safe action at env step {env_step}{cause}: {error_text(err)}; "
                         "make the fallback return a finite action here (e.g. give it a measured position "
                         "or executed actions through its FallbackContext)", source="fallback")


def fault_owner(err: FailSafeError) -> str:
    """What the fault asks to fix: the env's observation, the fallback that gave no safe action, else the policy."""
    return {"observation": "the env's observation", "fallback": "the fallback"}.get(err.source, "the policy")


def error_text(err: BaseException) -> str:
    """An exception as a fault's reason: its type and message (a KeyError's key without repr quotes)."""
    text = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    return f"{type(err).__name__}: {text}"
