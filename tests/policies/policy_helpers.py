"""Tiny policy and training configurations shared by the policy tests (fast on 2 CPU cores)."""

from __future__ import annotations

from policies import PolicyConfig, TrainConfig
from policies.toy_data import BimodalTask, toy_policy_config, toy_train_config

# The default task: a 2-step approach then an 8-step half circle (3 of 10 windows are ambiguous).
TASK = BimodalTask()
OBS_SHAPES = {"agent_pos": (2,)}


def tiny_config(kind: str, denoiser: str = "mlp", **overrides) -> PolicyConfig:
    return toy_policy_config(kind, denoiser, **overrides)


def tiny_train_config(policy: PolicyConfig, steps: int, **overrides) -> TrainConfig:
    return toy_train_config(policy, steps, **{"device": "cpu", "progress": False, **overrides})


def passes_mode_check(fractions: dict[str, float]) -> bool:
    """Both arcs sampled (each >= 30 %) and almost nothing (< 10 %) heading into the obstacle."""
    return fractions["up"] >= 0.3 and fractions["down"] >= 0.3 and fractions["middle"] < 0.1
