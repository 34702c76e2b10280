"""What the monitor says about one decision."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class MonitorVerdict:
    """One decision's raw and windowed scores, thresholds, ratios and alarm.

    ``reason`` explains the alarm in words: the indicators that crossed their thresholds, or the
    error that forced a fail-safe alarm (``failsafe=True``). ``combined_ratio`` > 1 means alarm.
    ``score_ms`` is each score's time on this decision, to find the one that makes a decision slow.
    """

    decision: int
    scores: dict[str, float] = field(default_factory=dict)
    windowed: dict[str, float] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    ratios: dict[str, float] = field(default_factory=dict)
    combined_ratio: float = float("nan")
    alarm: bool = False
    crossed: tuple[str, ...] = ()
    reason: str = ""
    failsafe: bool = False
    skipped: tuple[str, ...] = ()
    score_ms: dict[str, float] = field(default_factory=dict, compare=False)  # timing: not part of what it says

    def as_dict(self) -> dict:
        return asdict(self)
