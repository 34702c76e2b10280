"""Episode outcome labels: latched success, first irrecoverable event, timeout."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EpisodeLabels:
    """The outcome is decided by whichever comes first: success or an irrecoverable event.

    ``failure_step`` is the index t of the env step whose transition produced the event (the
    row of that step in a recorded episode); a timeout marks the last step, only if nothing
    was decided earlier.
    """

    success: bool = False
    failure_step: int = -1
    failure_reason: str = ""

    @property
    def failure(self) -> bool:
        return self.failure_step >= 0

    @property
    def decided(self) -> bool:
        return self.success or self.failure

    def update(self, t: int, success_now: bool, failure_reason: str) -> None:
        if self.decided:
            return
        if failure_reason:
            self.failure_step, self.failure_reason = t, failure_reason
        elif success_now:
            self.success = True

    def timeout(self, t: int) -> None:
        if not self.decided:
            self.failure_step, self.failure_reason = t, "timeout"

    def as_info(self) -> dict:
        return {"success": self.success, "failure": self.failure, "failure_step": self.failure_step, "failure_reason": self.failure_reason}
