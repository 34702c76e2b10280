"""Evaluation of failure monitors: the published detection metrics (metrics, ranking) and the
offline evaluation of recorded rollouts: the engine (evaluate_rollouts -> EvaluationResult), the
renderer (write_outputs: report.md, metrics.json, plots) and the deploy step
(write_monitor_files: monitor_<task>.yaml); docs/evaluation.md."""

from fiper.evaluation.metrics import (
    GROUPS,
    DetectionMetrics,
    GroupRate,
    LeadTime,
    decision_env_steps,
    detection_metrics,
    metric_summary,
    four_way_split,
    lead_time,
    physical_onset,
    alarmed_before_onset,
)
from fiper.evaluation.ranking import auroc, average_ranks
from fiper.evaluation.config import EvaluationConfig, MethodSpec, SplitConfig
from fiper.evaluation.results import EvaluationResult, MethodResult, TaskResult, TypeResult
from fiper.evaluation.engine import evaluate_rollouts, evaluate_task, evaluate_tasks
from fiper.evaluation.deploy import write_monitor_files
from fiper.evaluation.render import summary_table, write_outputs
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
    "evaluate_tasks",
    "expand_stores",
    "load_rollouts",
    "split_episodes",
    "summary_table",
    "write_monitor_files",
    "write_outputs",
    "GROUPS",
    "DetectionMetrics",
    "GroupRate",
    "LeadTime",
    "auroc",
    "average_ranks",
    "decision_env_steps",
    "detection_metrics",
    "metric_summary",
    "four_way_split",
    "lead_time",
    "physical_onset",
    "alarmed_before_onset",
]
