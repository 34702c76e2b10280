"""Generic demonstration / rollout collection: run an expert in any gymnasium env, store episodes.

Works with any gymnasium env whose observation is a dict of arrays (nested dicts under dotted keys, one
array as 'obs': :func:`observation_dict`) and any object with ``reset(seed)`` and
``act(obs, info) -> action``. Per-episode labels come from the final ``info``; see
:func:`episode_labels` for the fallbacks. fiper never imports a particular environment package:
factories are named as 'module:function' strings.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from tqdm.auto import tqdm

from fiper.env_factory import SetupError, declared_step_limit
from fiper.env_io import checked_action, clip_to_space, layout_change, observation_arrays, undeclared_shapes
from fiper.gym_api import reset_env, step_env
from fiper.label_notes import (DEFAULT_TERMINATED, SUCCESS_KEYS, never_said_success, no_success_reported, reports_success,
                               timeout_as_termination, unnamed_terminations, unread_words)
from fiper.storage import EpisodeStore
from fiper.storage.layout import unstorable_name


class TooFewEpisodes(RuntimeError, ValueError):
    """Collection stopped after its attempts with fewer episodes than asked; the message says why and what to change.
    A RuntimeError, and a ValueError so that the entry points end with its message instead of a traceback."""


class Expert(Protocol):
    """Anything that acts in an env: a scripted expert, a policy wrapper, a human interface."""

    def reset(self, seed: int | None = None) -> None: ...

    def act(self, obs: Any, info: Mapping[str, Any]) -> np.ndarray: ...


@dataclass
class Episode:
    """One finished episode: per-step arrays (obs keys + 'action') and its labels."""

    data: dict[str, np.ndarray]
    success: bool
    failure_step: int
    failure_reason: str
    seed: int
    shift: str = "none"
    severity: float = 0.0
    clipped_steps: int = 0  # expert actions clipped to the env's action space (clip_to_space)
    clip_excess: float = 0.0  # the largest excursion clipped, as a share of the entry's range
    info_keys: tuple[str, ...] = ()  # the keys of the episode's final info
    unread: dict[str, str] = field(default_factory=dict)  # the final info's text entries fiper does not read (label_notes)
    earlier_success: int = -1  # a failed episode's first step whose info said success (lost_successes_note)

    @property
    def length(self) -> int:
        return int(self.data["action"].shape[0])

    def meta(self) -> dict[str, Any]:
        return {"success": self.success, "failure_step": self.failure_step, "failure_reason": self.failure_reason,
                "seed": self.seed, "shift": self.shift, "severity": self.severity}


@dataclass
class CollectionSummary:
    saved: int
    attempted: int
    successes: int
    seconds: float
    seeds: list[int] = field(default_factory=list)
    clipped_steps: int = 0  # over the saved episodes
    clip_excess: float = 0.0
    longest: int = 0  # steps of the longest saved episode
    total_steps: int = 0  # steps of the saved episodes
    step_limit: int | None = None  # the env's declared time limit (declared_step_limit)
    span_share: float | None = None  # the saved actions' widest span, as a share of its entry's range (action_span_share)
    failures: list[tuple[str, int]] = field(default_factory=list)  # (failure_reason, failure_step) of each failed attempt
    success_reported: bool = False  # some attempt's final info said whether it succeeded (label_notes.reports_success)
    info_keys: tuple[str, ...] = ()  # the last attempt's final info keys
    unnamed: int = 0  # failed attempts labelled the default 'terminated' whose final info said why in words of its own
    unnamed_words: dict[str, str] = field(default_factory=dict)  # one of them's (label_notes.unread_words)
    undeclared: str | None = None  # observation shapes other than the env's observation space declares (undeclared_shapes)
    lost: list[int] = field(default_factory=list)  # failed attempts' first steps whose info said success (lost_successes_note)
    same_start: bool = True  # every attempt so far started from the first one's observation (one_start_note)

    def __str__(self) -> str:
        text = (f"saved {self.saved} episode{'s' * (self.saved != 1)} from {self.attempted} attempt{'s' * (self.attempted != 1)} "
                f"({self.successes} successful) in {self.seconds:.1f} s")
        if self.clipped_steps:
            text += "; " + clipped_note(self.clipped_steps, self.total_steps, self.clip_excess, "the expert's", "as stored and executed",
                                        "fix the expert, or, if the env takes more than its action space says (gym-aloha "
                                        "declares [-1, 1] for joint angles up to 3.14 rad), declare the real bounds in the env "
                                        "factory (env.unwrapped.action_space = gymnasium.spaces.Box(low, high)); else clip in "
                                        "the expert to silence this")
        if self.span_share is not None and self.span_share < SPAN_NOTE:
            text += "; " + narrow_span_note(self.span_share)
        if self.undeclared:
            text += "; " + self.undeclared
        if self.step_limit is None and self.saved:
            text += (f"; the env declares no time limit, so a policy's episode that does not end stops its rollouts only after "
                     f"{EPISODE_STEP_LIMIT:,} steps, with an error: give it one unless it ends every episode itself "
                     f"(gymnasium.wrappers.TimeLimit(env, max_episode_steps=...), a few times the longest demo's "
                     f"{self.longest} steps)")
        if self.saved and not (self.success_reported or self.successes):
            text += f"; all {self.saved} stored as failures: " + no_success_reported(self.attempted, self.info_keys,
                                                                                     self.terminated(), timeouts=self.timeouts())
        if note := timeout_as_termination(self.failures, self.step_limit):
            text += "; " + note
        if self.unnamed:
            text += "; " + unnamed_terminations(self.unnamed, self.unnamed_words)
        if self.lost:
            text += "; " + lost_successes_note(self.lost, len(self.failures))
        if self.same_start and self.attempted >= SAME_START_MIN:
            text += "; " + one_start_note(self.attempted)
        return text

    def terminated(self) -> int:
        """Failed attempts labelled the default 'terminated': they ended terminated, not by a time limit."""
        return sum(reason == DEFAULT_TERMINATED for reason, _ in self.failures)

    def timeouts(self) -> int:
        """Failed attempts labelled 'timeout': they ran to the time limit."""
        return sum(reason == "timeout" for reason, _ in self.failures)


def clipped_note(steps: int, total: int, excess: float, whose: str, where: str, fix: str) -> str:
    """One sentence on actions clipped to the env's action space (``clip_to_space``): how many of ``total``, by how
    much, and the likely cause: most of them, other units than the env takes; a few, commands at the space's edge."""
    share = steps / max(total, 1)
    cause = (f"most of them, so they likely come in other units than the env takes (a torque where it takes a normalised "
             f"command, a skipped or doubled unnormalise step): {fix}" if share >= 0.5 else
             f"if they come in other units than the env takes (a torque where it takes a normalised command), {fix}; a few "
             "clipped actions are commands at the space's edge, or a policy leaving the demonstrated range")
    return (f"{steps} of {whose} {total} actions ({share:.0%}) left the env's action space (by up to {excess:.0%} of an "
            f"entry's range) and were clipped to it, {where}: {cause}")


SPAN_MIN_STEPS = 10  # fewer actions say nothing of the range an expert uses
SPAN_NOTE = 0.01  # actions spanning less than this share of every bounded entry's range are noted


def action_span_share(actions: np.ndarray, space: Any) -> float | None:
    """The widest span of ``actions`` (n, A) over the entries ``space`` bounds on both sides, as a share of that entry's
    range; None without such an entry. Near 0, the actions likely come in other units than the env takes."""
    low, high = getattr(space, "low", None), getattr(space, "high", None)
    if low is None or high is None or not len(actions):
        return None
    actions = np.asarray(actions, np.float64).reshape(len(actions), -1)
    rng = (np.broadcast_to(np.asarray(high, np.float64), actions.shape[1:])
           - np.broadcast_to(np.asarray(low, np.float64), actions.shape[1:]))
    bounded = (rng > 0) & (rng < 1e9)  # float32's largest value as a bound means none
    if not bounded.any():
        return None
    return float(((actions.max(axis=0) - actions.min(axis=0))[bounded] / rng[bounded]).max())


def narrow_span_note(share: float) -> str:
    """One sentence on actions that use a sliver of every entry of the env's action space."""
    return (f"the expert's actions span at most {share:.2%} of the env's action range on every bounded entry: if they come "
            "in other units than the env takes (a normalised command where it takes pixels or radians, a skipped "
            "unnormalise step), scale them in the expert; a policy trained on them repeats them")


def episode_labels(info: Mapping[str, Any], terminated: bool, truncated: bool, last_step: int) -> dict[str, Any]:
    """Labels of a finished episode from its final info, with defaults for an env that gives none.

    success: info['success'], else info['is_success'] (gymnasium-robotics), else False: an episode
    is a success only when the env says so. failure_step: info['failure_step'], else -1 for a
    success and the last step otherwise. failure_reason: info['failure_reason'], else 'timeout'
    when the episode was truncated (ran out of time) and 'terminated' when it ended without the
    env saying success. A failed episode whose info says no failure (failure_step -1 or None,
    failure_reason '' or None: an env that sets them at every step) gets the same defaults, so
    a timeout is not counted as a physical failure at step -1.
    """
    said = next((key for key in SUCCESS_KEYS if key in info), None)
    success = bool(info[said]) if said is not None else False
    default_step = -1 if success else last_step
    default_reason = "" if success else ("timeout" if truncated and not terminated else DEFAULT_TERMINATED)
    step, reason = info.get("failure_step", default_step), info.get("failure_reason", default_reason)
    if not success:  # an env that reports 'no failure' ('', None, -1) at every step leaves a failure unnamed: the defaults
        step = last_step if step is None or int(step) < 0 else step
        reason = default_reason if reason is None or not str(reason) else reason
    return {
        "success": success,
        "failure_step": int(step),
        "failure_reason": str(reason),
        "shift": str(info.get("shift", "none")),
        "severity": float(info.get("severity", 0.0)),
    }


SAME_START_MIN = 3  # attempts, each with its own seed, that all started alike before one_start_note is said


def one_start_note(attempts: int) -> str:
    """One sentence on attempts whose seeds all gave the same first observation: an env whose reset(seed) does not draw
    the start from the seed (a Meta-World env with one task set and nothing else), so the demos show one start."""
    return (f"all {attempts} attempts started from the same observation, each with its own seed: if the task's start "
            "should vary, draw it from the seed in reset(seed) (a Meta-World env given one task with set_task and "
            "nothing else starts every episode alike, examples/metaworld_push/envs.py); these demos show a policy "
            "one start")


def says_success(info: Mapping[str, Any]) -> bool:
    """Whether this step's info says success (info['success'], else info['is_success']), as episode_labels reads it."""
    said = next((key for key in SUCCESS_KEYS if key in info), None)
    try:
        return said is not None and bool(info[said])
    except (TypeError, ValueError):  # an array of several values: episode_labels says what is wrong with it
        return False


def lost_successes_note(first_steps: list[int], failures: int) -> str:
    """One sentence on failed attempts whose info said success at an earlier step than their last (Meta-World's episodes
    run on after a success, which the task can then undo): fiper labels an episode by its final info."""
    return (f"{len(first_steps)} of the {failures} failed attempts said success at an earlier step (the first at step "
            f"{min(first_steps)}) but not at their last, and an episode is labelled by its final info: if the task counts "
            "a success once reached (Meta-World's evaluation does), end the episode there in the env factory (a wrapper "
            "returning terminated=True at the first success) or keep info['success'] true from then on")


def no_time_limit(seed: int, steps: int) -> str:
    return (f"the episode with seed {seed} ran {steps} steps without ending; give the env a time limit in its factory "
            "(gymnasium.wrappers.TimeLimit(env, max_episode_steps=...), or max_episode_steps= to gymnasium.make)")


EPISODE_STEP_LIMIT = 100_000  # an episode that has not ended by then is an env without a time limit


def run_episode(env, expert: Expert, seed: int, *, max_steps: int = EPISODE_STEP_LIMIT) -> Episode:
    """Roll out one episode; row t holds the observation before action t and action t."""
    obs, info = reset_env(env, seed)
    expert.reset(seed)
    rows: dict[str, list[np.ndarray]] = {}
    layout: dict[str, tuple] | None = None  # the first observation's keys and shapes
    actions: list[np.ndarray] = []
    terminated = truncated = False
    clipped, worst, succeeded_at = 0, 0.0, -1
    while not (terminated or truncated):
        if len(actions) >= max_steps:
            raise SetupError(no_time_limit(seed, max_steps))
        observation = observation_arrays(obs)
        shapes = {k: v.shape for k, v in observation.items()}
        if layout is None and (bad := unstorable_name(shapes)):
            raise SetupError(f"the env's observation key {bad[0]!r} {bad[1]}: a store names its arrays by path, so it cannot "
                             "keep that key as it is; rename it in the env factory (gymnasium.wrappers.TransformObservation), "
                             "e.g. '/' to '_'; no episode with it is stored")
        if layout is not None and shapes != layout:
            raise ValueError(layout_change(layout, shapes, seed, len(actions)))
        layout = shapes
        for key, value in observation.items():
            if value.dtype.kind in "fc" and not np.isfinite(value).all():
                raise ValueError(f"the env's observation {key!r} at step {len(actions)} of seed {seed} holds "
                                 f"{int((~np.isfinite(value)).sum())} NaN or inf values, which a policy cannot learn from; check "
                                 "the env for that state (a simulation that blew up, a sensor without data); episodes stored "
                                 "before it are kept")
            rows.setdefault(key, []).append(value)
        action, excess = clip_to_space(checked_action(expert.act(obs, info), env, seed, len(actions)), env.action_space)
        clipped, worst = clipped + (excess > 0), max(worst, excess)
        actions.append(action)
        obs, terminated, truncated, info = step_env(env, action, seed, len(actions) - 1)
        if succeeded_at < 0 and says_success(info):
            succeeded_at = len(actions) - 1
    data = {k: np.stack(v) for k, v in rows.items()}
    data["action"] = np.stack(actions).astype(np.float32)
    labels = episode_labels(info, terminated, truncated, len(actions) - 1)
    return Episode(data=data, seed=int(seed), clipped_steps=clipped, clip_excess=worst, info_keys=tuple(map(str, info)),
                   unread=unread_words(info), earlier_success=-1 if labels["success"] else succeeded_at, **labels)


def collect(
    env,
    expert: Expert,
    store: EpisodeStore,
    n_episodes: int,
    *,
    seed: int = 0,
    only_success: bool = False,
    max_attempts: int | None = None,
    progress: bool = True,
) -> CollectionSummary:
    """Append ``n_episodes`` episodes to ``store``; attempt i uses seed ``seed + i``.

    With ``only_success`` failed episodes are discarded and attempts continue (up to
    ``max_attempts``, default 2 * n_episodes + 20) until ``n_episodes`` successes are stored.
    """
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be >= 1, got {n_episodes}")
    limit = max_attempts if max_attempts is not None else (2 * n_episodes + 20 if only_success else n_episodes)
    summary = CollectionSummary(saved=0, attempted=0, successes=0, seconds=0.0, step_limit=declared_step_limit(env))
    start = time.perf_counter()
    bar = tqdm(total=n_episodes, desc="collect", unit="ep", disable=not progress)
    spans: list[np.ndarray] = []  # each saved episode's per-entry action minimum and maximum
    first_start: dict[str, np.ndarray] | None = None  # the first attempt's first observation (one_start_note)
    try:
        while summary.saved < n_episodes:
            if summary.attempted >= limit:
                raise TooFewEpisodes(too_few_saved(summary, n_episodes))
            episode = run_episode(env, expert, seed + summary.attempted)
            if not summary.attempted:
                summary.undeclared = undeclared_shapes({k: v.shape[1:] for k, v in episode.data.items() if k != "action"},
                                                       getattr(env, "observation_space", None))  # a duck-typed env: none
            began = {k: v[0] for k, v in episode.data.items() if k != "action"}
            first_start = began if first_start is None else first_start
            summary.same_start = summary.same_start and began.keys() == first_start.keys() and all(
                np.array_equal(v, first_start[k]) for k, v in began.items())
            summary.attempted += 1
            summary.successes += episode.success
            summary.info_keys = episode.info_keys
            summary.success_reported = summary.success_reported or reports_success(episode.info_keys)
            if not episode.success:
                summary.failures.append((episode.failure_reason, episode.failure_step))
                summary.lost += [episode.earlier_success] if episode.earlier_success >= 0 else []
            if not episode.success and episode.failure_reason == DEFAULT_TERMINATED and episode.unread:
                summary.unnamed += 1
                summary.unnamed_words = summary.unnamed_words or episode.unread
            if only_success and not episode.success:
                bar.set_postfix(success=f"{summary.successes}/{summary.attempted}")
                continue
            store.append_episode(episode.data, meta=episode.meta())
            summary.saved += 1
            summary.clipped_steps += episode.clipped_steps
            summary.clip_excess = max(summary.clip_excess, episode.clip_excess)
            summary.seeds.append(episode.seed)
            summary.longest = max(summary.longest, episode.length)
            summary.total_steps += episode.length
            actions = episode.data["action"]
            spans.append(np.stack([actions.min(axis=0), actions.max(axis=0)]))
            bar.update(1)
            bar.set_postfix(success=f"{summary.successes}/{summary.attempted}")
    finally:
        bar.close()
    summary.seconds = time.perf_counter() - start
    if summary.total_steps >= SPAN_MIN_STEPS:
        summary.span_share = action_span_share(np.concatenate(spans), env.action_space)
    return summary


def too_few_saved(summary: CollectionSummary, n_episodes: int) -> str:
    """Why collection stopped with fewer episodes than asked for, with what the failed attempts' labels say."""
    text = (f"only {summary.saved} of {n_episodes} episodes saved after {summary.attempted} attempts "
            f"({summary.successes} successful)")
    reasons = sorted(Counter(reason for reason, _ in summary.failures).items())
    if reasons:
        text += f"; the failed attempts' labels: {', '.join(f'{n} {reason!r}' for reason, n in reasons)}"
    notes = ([] if summary.success_reported or summary.successes else
             [no_success_reported(summary.attempted, summary.info_keys, summary.terminated(), timeouts=summary.timeouts())
              + ", or store every episode with only_success=false"])
    notes += [never_said_success(summary.attempted, summary.info_keys)] \
        if summary.success_reported and not summary.successes and not summary.lost else []
    notes += [note] if (note := timeout_as_termination(summary.failures, summary.step_limit)) else []
    notes += [unnamed_terminations(summary.unnamed, summary.unnamed_words)] if summary.unnamed else []
    notes += [lost_successes_note(summary.lost, len(summary.failures))] if summary.lost else []
    return "; ".join([text, *notes, "else raise max_attempts or check the expert"])
