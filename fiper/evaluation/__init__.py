"""Evaluation of failure monitors: the published detection metrics (metrics, ranking) and the
offline evaluation of recorded rollouts (evaluate_rollouts -> write_outputs; docs/evaluation.md)."""

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
from fiper.evaluation.config import EvaluationConfig, MethodSpec, SplitConfig
from fiper.evaluation.pipeline import EvaluationResult, MethodResult, TaskResult, TypeResult, evaluate_rollouts, evaluate_task
from fiper.evaluation.report import summary_table, write_outputs
from fiper.evaluation.rollouts import RolloutError, RolloutSet, expand_stores, load_rollouts
from fiper.evaluation.splits import Split, split_episodes

__all__ = [
    "EvaluationConfig",
    "EvaluationResult",
    "MethodResult",
    "MethodSpec",
    "RolloutError",
    "RolloutSet",
    "Split",
    "SplitConfig",
    "TaskResult",
    "TypeResult",
    "evaluate_rollouts",
    "evaluate_task",
    "expand_stores",
    "load_rollouts",
    "split_episodes",
    "summary_table",
    "write_outputs",
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
