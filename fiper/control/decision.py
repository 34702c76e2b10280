"""One decision as the wrapper records and reports it: the ``Decision`` record, the host copies it keeps (NaN for
a part a fault came before), the fail-safe verdict a fault gives, and the info dict ``act`` leaves in ``last_info``."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np
import torch

from fiper.monitor import MonitorVerdict


@dataclass
class Decision:
    """Everything about one decision, as the recorder stores it."""

    env_step: int
    embedding: np.ndarray  # (D,); NaN where the fault came before encode finished
    samples: np.ndarray  # (B, H, A); NaN where the fault came before sample finished
    executed: np.ndarray  # (H, A) chunk queued for execution (NaN while a fallback acts)
    verdict: MonitorVerdict | None
    intervention: str
    steered: bool
    timing_ms: dict[str, float] = field(default_factory=dict)
    overrun: bool = False
    steer_stage: int = -1  # the steering's stage program at this decision (staged rewards); -1: the response has no steering


class HostCopy(NamedTuple):
    """What one decision brought to the host: the chunk (H, A), embedding (D,) and batch (B, H, A), float32."""

    chunk: np.ndarray
    embedding: np.ndarray | None
    samples: np.ndarray | None


def _host(x: torch.Tensor | np.ndarray, per_decision_ndim: int) -> np.ndarray:
    """A host float32 copy of one decision's embedding (ndim 1) or batch (ndim 3): host arrays pass through,
    a tensor (N, ...) gives its first entry (a fault path, outside the decision's one copy)."""
    if isinstance(x, np.ndarray):
        return x
    return (x[0] if x.ndim > per_decision_ndim else x).float().cpu().numpy()


def recorded_arrays(z: torch.Tensor | np.ndarray | None, samples: torch.Tensor | np.ndarray | None, embedding_dim: int,
                    batch_shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The embedding (D,) and batch (B, H, A) a decision record keeps, on the host; NaN for a part not made."""
    embedding = _host(z, 1) if z is not None else np.full(embedding_dim, np.nan, np.float32)
    batch = _host(samples, 3) if samples is not None else np.full(batch_shape, np.nan, np.float32)
    return embedding, batch


def steer_stage(response: Any) -> int:
    """The stage program a response's steering steers by now (its tracker's stage); -1 for a response without one."""
    stage = getattr(getattr(getattr(response, "steering", None), "tracker", None), "stage", None)
    return int(stage[0]) if stage is not None and len(stage) else -1


def failsafe_verdict(reason: str, verdict: MonitorVerdict | None, decision: int) -> MonitorVerdict:
    """The monitor's verdict (or an empty one for decision ``decision``) turned into a fail-safe alarm for ``reason``."""
    base = verdict if verdict is not None else MonitorVerdict(decision)
    reason = f"{base.reason}; fail-safe: {reason}".lstrip("; ")
    return replace(base, alarm=True, failsafe=True, combined_ratio=math.inf, reason=reason)


def decision_info(decision: Decision) -> dict[str, Any]:
    """What ``last_info`` says of a decision."""
    verdict = decision.verdict
    return {
        "decision": True,
        "alarm": bool(verdict.alarm) if verdict else False,
        "failsafe": bool(verdict.failsafe) if verdict else False,
        "reason": verdict.reason if verdict else "",
        "ratios": dict(verdict.ratios) if verdict else {},
        "intervention": decision.intervention,
        "timing_ms": decision.timing_ms,
        "score_ms": dict(verdict.score_ms) if verdict else {},
        "overrun": decision.overrun,
    }
