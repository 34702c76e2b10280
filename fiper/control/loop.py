"""The gymnasium reset/step loop around a MonitoredPolicy, with labels for the recorder."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fiper.collection import EPISODE_STEP_LIMIT, episode_labels, no_time_limit
from fiper.env_io import observation_dict
from fiper.gym_api import reset_env, step_env
from fiper.label_notes import unread_words
from fiper.env_factory import SetupError
from fiper.control.decision import Decision
from fiper.control.monitored_policy import MonitoredPolicy
from fiper.scores.images import MAX_WHOLE, image_axes
from fiper.scores.inputs import host_array


@dataclass
class EpisodeResult:
    """One episode: per-step arrays, the decisions taken, and its labels."""

    steps: dict[str, np.ndarray]
    decisions: list[Decision]
    labels: dict[str, Any]
    infos: list[dict[str, Any]] = field(default_factory=list)
    clipped_steps: int = 0  # actions clipped to the env's action space (MonitoredPolicy.bind_env)
    clip_excess: float = 0.0  # the largest excursion clipped, as a share of the entry's range
    unread: dict[str, str] = field(default_factory=dict)  # the final info's text entries fiper does not read (label_notes)
    info_keys: tuple[str, ...] | None = None  # the final info's keys (label_notes.reports_success reads them); None: not kept
    optional_keys: tuple[str, ...] = ()  # keys of ``steps`` recorded only by default (the env's other small keys)

    @property
    def success(self) -> bool:
        return bool(self.labels["success"])

    @property
    def n_steps(self) -> int:
        """Env steps the episode ran."""
        return int(len(self.steps["action"]))


def _row(obs: Any, key: str, like: tuple[int, ...] | None) -> np.ndarray | None:
    """One step's ``obs[key]`` as a host array, or None when it is missing, non-numeric or not shaped ``like``."""
    try:
        value = np.array(host_array(observation_dict(obs)[key]))  # copied: an env may rewrite one buffer every step
    except Exception:
        return None
    return value if value.dtype.kind in "fiub" and (like is None or value.shape == like) else None


def _stack(rows: list[np.ndarray | None], key: str) -> np.ndarray:
    """Rows (T, ...) with each unreadable step filled with NaN (0 for an integer key)."""
    good = next((r for r in rows if r is not None), None)
    if good is None:
        raise ValueError(f"no step of the episode had a readable observation {key!r}; check the env's observations")
    fill = np.full_like(good, np.nan) if good.dtype.kind == "f" else np.zeros_like(good)
    return np.stack([fill if r is None else r for r in rows])


def default_record_keys(agent: MonitoredPolicy) -> list[str]:
    """The observation keys a rollout keeps by default: the policy's, then those a monitor's score reads in the raw
    observation (obs_novelty fitted on a camera the policy leaves out), so the rollouts calibrate and evaluate it
    (``run_episode`` adds the env's other small keys, ``other_small_keys``)."""
    keys = list(agent.policy.obs_shapes)
    scores = getattr(getattr(agent, "monitor", None), "scores", None) or {}  # an agent or monitor of one's own may have none
    for score in scores.values():
        if "observation" in getattr(score, "needs", ()):
            keys += [str(k) for k in (getattr(score, "config", None) or {}).get("keys") or () if str(k) not in keys]
    return keys


def other_small_keys(observation: Any, keys: Sequence[str]) -> tuple[str, ...]:
    """The small numeric keys of ``observation`` (the env's first) besides ``keys``: recorded by default, so that a
    reference reading the raw observation sees what the env reports beside the policy's view (an obstacle a policy of
    one's own does not read)."""
    return tuple(k for k, v in observation_dict(observation).items() if k not in keys and _small_numeric(v))


def _small_numeric(value: Any) -> bool:
    """A numeric array that is not a camera image and holds at most MAX_WHOLE numbers: cheap to keep at every step."""
    try:
        array = np.asarray(host_array(value))
    except Exception:
        return False
    return array.dtype.kind in "fiub" and array.size <= MAX_WHOLE and image_axes(array.shape) is None


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

    ``max_steps`` ends it as a timeout; without it an episode that runs ``EPISODE_STEP_LIMIT`` steps is an env
    without a time limit, an error naming the fix rather than a rollout that never ends. ``record_keys`` picks
    the observation keys kept per step (default: the policy's keys, those a monitor's score reads and the env's other
    small numeric keys, ``default_record_keys``; an array observation is the key 'obs'). A
    step whose observation could not be read (the agent's fail-safe alarm names why) is stored as NaN, or 0 for
    an integer key. ``steps['action']`` holds what the env executed: an action outside the env's action space
    is clipped to it (counted in ``clipped_steps``), while the decisions keep the chunks as the policy gave them.
    """
    obs, info = reset_env(env, seed, reset_options or None)
    agent.reset(seed=seed)
    agent.bind_env(env)
    keys, optional = list(record_keys or ()), ()
    if record_keys is None:
        keys = default_record_keys(agent)
        optional = other_small_keys(obs, keys)
        keys += optional
    shapes: dict[str, tuple[int, ...] | None] = {k: agent.history.shapes.get(k) if agent.history.shapes else None for k in keys}
    rows: dict[str, list] = {k: [] for k in keys}
    actions, infos = [], []
    done, t, terminated, truncated = False, 0, False, False
    clipped, worst = 0, 0.0
    while not done and (max_steps is None or t < max_steps):
        if max_steps is None and t >= EPISODE_STEP_LIMIT:
            raise SetupError(no_time_limit(seed, t))
        action = agent.act(obs)
        for k in keys:
            rows[k].append(row := _row(obs, k, shapes[k]))
            if shapes[k] is None and row is not None:
                shapes[k] = row.shape
        actions.append(action)
        clipped, worst = clipped + ("clipped" in agent.last_info), max(worst, agent.last_info.get("clipped", 0.0))
        obs, terminated, truncated, info = step_env(env, action, seed, t)
        infos.append({**agent.last_info, **{k: info[k] for k in ("success", "failure_step") if k in info}})
        done = bool(terminated or truncated)
        t += 1
    out_labels = {**episode_labels(info, terminated, truncated or not done, t - 1), "seed": int(seed), **(labels or {})}
    steps = {k: _stack(v, k) for k, v in rows.items()}
    steps["action"] = np.stack(actions)
    return EpisodeResult(steps, list(agent.decisions), out_labels, infos, clipped, worst, unread_words(info),
                         tuple(map(str, info)), optional)
