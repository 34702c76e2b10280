"""Evaluation of failure monitors: the published detection metrics, AUROC, four-way split, lead time."""

from fiper.evaluation.metrics import (
    GROUPS,
    DetectionMetrics,
    GroupRate,
    LeadTime,
    decision_env_steps,
    detection_metrics,
    evaluation_report,
    four_way_split,
    lead_time,
)
from fiper.evaluation.ranking import auroc, average_ranks

__all__ = [
    "GROUPS",
    "DetectionMetrics",
    "GroupRate",
    "LeadTime",
    "auroc",
    "average_ranks",
    "decision_env_steps",
    "detection_metrics",
    "evaluation_report",
    "four_way_split",
    "lead_time",
]
