"""The gymnasium reset/step loop around a MonitoredPolicy, with labels for the recorder."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fiper.collection import episode_labels
from fiper.control.monitored_policy import Decision, MonitoredPolicy
from fiper.scores.inputs import host_array


@dataclass
class EpisodeResult:
    """One episode: per-step arrays, the decisions taken, and its labels."""

    steps: dict[str, np.ndarray]
    decisions: list[Decision]
    labels: dict[str, Any]
    infos: list[dict[str, Any]] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return bool(self.labels["success"])


def run_episode(
    env: Any,
    agent: MonitoredPolicy,
    *,
    seed: int,
    record_keys: Sequence[str] | None = None,
    max_steps: int | None = None,
    labels: Mapping[str, Any] | None = None,
    reset_options: Mapping[str, Any] | None = None,
) -> EpisodeResult:
    """Run one episode to termination / truncation; success and failure_step come from ``info``.

    ``record_keys`` picks the observation keys kept per step (default: the policy's keys).
    """
    obs, info = env.reset(seed=seed, options=dict(reset_options) if reset_options else None)
    agent.reset(seed=seed)
    agent.bind_env(env)
    keys = list(record_keys if record_keys is not None else agent.policy.obs_shapes)
    rows: dict[str, list] = {k: [] for k in [*keys, "action"]}
    infos = []
    done, t, terminated, truncated = False, 0, False, False
    while not done and (max_steps is None or t < max_steps):
        action = agent.act(obs)
        for k in keys:
            rows[k].append(host_array(obs[k]))
        rows["action"].append(action)
        obs, _, terminated, truncated, info = env.step(action)
        infos.append({**agent.last_info, **{k: info[k] for k in ("success", "failure_step") if k in info}})
        done = bool(terminated or truncated)
        t += 1
    out_labels = {**episode_labels(info, terminated, truncated or not done, t - 1), "seed": int(seed), **(labels or {})}
    return EpisodeResult({k: np.stack(v) for k, v in rows.items()}, list(agent.decisions), out_labels, infos)
