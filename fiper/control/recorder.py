"""Turn one monitored episode (steps + decisions) into the rollout-store contract and append it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fiper.control.monitored_policy import Decision
from fiper.storage import EpisodeStore

TIMING_PHASES = ("encode", "sample", "monitor", "intervention", "total")


def decision_arrays(decisions: Sequence[Decision], score_names: Sequence[str], sample_dtype: str = "float16") -> dict[str, np.ndarray]:
    """Per-decision arrays (N, ...) of the contract: embedding, samples, scores, ratios, alarm, ..."""
    if not decisions:
        raise ValueError("an episode without decisions cannot be recorded: the policy never acted")
    nan = float("nan")
    out: dict[str, np.ndarray] = {
        "embedding": np.stack([d.embedding for d in decisions]).astype(np.float32),
        "samples": np.stack([d.samples for d in decisions]).astype(sample_dtype),
        "executed": np.stack([d.executed for d in decisions]).astype(np.float32),
        "env_step": np.array([d.env_step for d in decisions], dtype=np.int64),
        "alarm": np.array([bool(d.report and d.report.alarm) for d in decisions]),
        "failsafe": np.array([bool(d.report and d.report.failsafe) for d in decisions]),
        "combined_ratio": np.array([d.report.combined_ratio if d.report else nan for d in decisions]),
        "reason": np.array([d.report.reason if d.report else "" for d in decisions], dtype=str),
        "intervention": np.array([d.intervention for d in decisions], dtype=str),
        "steered": np.array([d.steered for d in decisions]),
        "overrun": np.array([d.overrun for d in decisions]),
    }
    for phase in TIMING_PHASES:
        out[f"timing/{phase}_ms"] = np.array([d.timing_ms.get(phase, nan) for d in decisions], dtype=np.float32)
    for name in score_names:
        for field in ("scores", "windowed", "thresholds", "ratios"):
            key = {"scores": "score", "windowed": "windowed", "thresholds": "threshold", "ratios": "ratio"}[field]
            out[f"{key}/{name}"] = np.array([getattr(d.report, field).get(name, nan) if d.report else nan for d in decisions])
    return out


def episode_meta(decisions: Sequence[Decision], labels: Mapping[str, Any]) -> dict[str, Any]:
    """Episode labels plus where the first alarm and the first intervention happened."""
    first = next((d for d in decisions if d.report is not None and d.report.alarm), None)
    acted = next((d for d in decisions if d.intervention != "none"), None)
    meta = {
        "success": bool(labels.get("success", False)),
        "failure_step": int(labels.get("failure_step", -1)),
        "shift": str(labels.get("shift", "none")),
        "severity": float(labels.get("severity", 0.0)),
        "seed": int(labels.get("seed", -1)),
        "first_alarm_step": first.env_step if first else -1,
        "first_alarm_decision": decisions.index(first) if first else -1,
        "first_intervention_step": acted.env_step if acted else -1,
        "n_decisions": len(decisions),
    }
    meta.update({k: v for k, v in labels.items() if k not in meta})
    return meta


class RolloutRecorder:
    """Appends monitored episodes to a rollout store, one atomic episode at a time."""

    def __init__(self, path: Any, *, score_names: Sequence[str] = (), attrs: Mapping[str, Any] | None = None,
                 sample_dtype: str = "float16"):
        self.store = EpisodeStore.open_or_create(path, attrs=attrs)
        self.score_names, self.sample_dtype = tuple(score_names), sample_dtype

    def write(self, steps: Mapping[str, np.ndarray], decisions: Sequence[Decision], labels: Mapping[str, Any]) -> int:
        """Append one episode: per-step arrays (T, ...), its decisions, and its labels."""
        return self.store.append_episode(
            dict(steps),
            decisions=decision_arrays(decisions, self.score_names, self.sample_dtype),
            meta=episode_meta(decisions, labels),
        )
