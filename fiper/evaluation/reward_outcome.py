"""How well a steering response satisfied its own reward program, from the stores of an outcome sweep.

A steering response picks, at every steered decision, the sampled chunk its reward program scores highest. Whether
that kept the robot out of the zone (or wherever the reward wants it) is read back from what each run executed:
the store's ``decisions/executed`` holds the chunk queued at every decision (NaN where a fallback acted). Every
executed chunk is lifted as steering lifts it (``lift_chunks`` with the steering's ``position_dims`` and
``velocity_actions``; velocities integrated from the position measured in the observation recorded at the decision's
env step, over the control period, both as the response's FallbackContext names them) and scored by the same program, in the run with the response and in the run without fiper on
the same (shift, severity, seed), so the comparison is paired:

- a decision is scored where both runs decided at the same env step and both executed a chunk (the policy's whole
  horizon, as steering scores it): decisions a fallback took over executed none, and those after the shorter run
  ended have no counterpart, so both runs are compared on the same moments of the same episode;
- an episode's figure is the mean reward of those chunks in each run; per response, the means over the paired
  episodes with and without fiper, and the mean of the per-episode differences (with − without) with its standard
  error over those episodes (the seeds are the independent units; the decisions of one episode are not).

A reward that reads the scene (``SceneKeepOut``) is bound, for each episode, to the cell's env reset with the
episode's seed (``make_env``; launch.act checks that a seed fixes the episode before anything runs). A reward that
raises or returns a wrong or non-finite value on the recorded chunks is reported as a note naming it, not raised.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch

from fiper.gym_api import reset_env
from fiper.interventions.scene import bind_scene, scene_aware_parts
from fiper.interventions.context import FallbackContext
from fiper.interventions.trajectory import lift_chunks
from fiper.interventions.velocity_path import frame_problem, recorded_starts
from fiper.storage import EpisodeStore

Key = tuple[str, float, int]  # (shift, severity rounded to 6 digits, seed)
Cell = tuple[str, float]


@dataclass(frozen=True)
class RewardOutcome:
    """A steering response's reward on the chunks each run executed, paired by seed (module docstring)."""

    reward: str  # the reward program's name
    episodes: int  # paired episodes with at least one decision scored
    decisions: int  # decisions scored: at one env step of one episode, both runs executed a chunk
    mean: float  # mean over the episodes of the episode's mean reward per scored chunk, with the response
    mean_without: float  # the same without fiper
    difference: float  # mean over the episodes of (with - without)
    se: float  # standard error of ``difference`` over the episodes; NaN with fewer than two
    note: str = ""  # why the reward was not evaluated ('' when it was)


def steering_of(response: Any) -> Any:
    """The steering (an object with ``rewards`` and ``config.position_dims``) of a response, or the steering itself;
    None for a response that does not steer with a reward."""
    for steering in (response, getattr(response, "steering", None)):
        if getattr(steering, "rewards", None) and hasattr(getattr(steering, "config", None), "position_dims"):
            return steering
    return None


def _velocity(steering: Any) -> bool:
    """Whether ``steering`` integrates its actions as velocities (a steering of one's own may not say: positions)."""
    return bool(getattr(steering.config, "velocity_actions", False))


class Chunks(NamedTuple):
    """One episode's decisions as a store recorded them."""

    steps: np.ndarray  # (N,) env step of each decision
    executed: np.ndarray  # (N, H, A) the chunk queued (NaN where a fallback acted)
    seen: dict[str, np.ndarray]  # per observation key asked for, its rows (N, ...) at those steps
    stages: np.ndarray | None  # (N,) the steering's stage program at each decision (decisions/steer_stage), if recorded


def executed_chunks(path: str | os.PathLike, observed: Collection[str] = ()) -> dict[Key, Chunks]:
    """Per episode of the store, its decisions' env steps and executed chunks, with the observations of the keys
    ``observed`` recorded at those steps; ValueError without ``decisions/executed`` or one of those keys."""
    store = EpisodeStore.open(path)
    missing = [f"decisions/{k}" for k in ("executed", "env_step") if k not in store.decision_keys]
    if missing:
        raise ValueError(f"{path} lacks {' and '.join(missing)} (the chunk queued at each decision, and its env step)")
    unrecorded = [k for k in observed if k not in store.data_keys]
    if unrecorded:
        raise ValueError(f"{path} records no observation {unrecorded} (it has {sorted(store.data_keys)}), where a velocity "
                         f"steering's executed chunks started: record it, record_keys=[..., {unrecorded[0]}]")
    executed = np.asarray(store.read_decisions("executed"), dtype=np.float32)
    steps = np.asarray(store.read_decisions("env_step"), dtype=np.int64)
    stages = np.asarray(store.read_decisions("steer_stage"), dtype=np.int64) if "steer_stage" in store.decision_keys else None
    rows = {k: store.read_data(k) for k in observed}
    shift, severity, seed = (store.meta(k) for k in ("shift", "severity", "seed"))
    ends, step_ends = (np.asarray(e, dtype=np.int64) for e in (store.decision_ends, store.episode_ends))
    out = {}
    for i in range(store.n_episodes):
        a, b, first = int(ends[i - 1]) if i else 0, int(ends[i]), int(step_ends[i - 1]) if i else 0
        seen = {k: v[first + steps[a:b]] for k, v in rows.items()}
        out[(str(shift[i]), round(float(severity[i]), 6), int(seed[i]))] = Chunks(steps[a:b], executed[a:b], seen,
                                                                                  None if stages is None else stages[a:b])
    return out


def chunk_rewards(steering: Any, chunks: np.ndarray, context: FallbackContext | None = None,
                  observed: dict[str, np.ndarray] | None = None, stages: np.ndarray | None = None) -> np.ndarray:
    """The steering's reward of each chunk of (decisions, H, A), as steering scores a chunk; NaN where it holds a NaN
    (a decision a fallback took over). Velocity actions start at the position ``context`` reads from the observations
    ``observed`` at the decisions (``executed_chunks``), integrated over its control period. A staged steering scores
    each chunk by the program of its decision's stage (``stages``); without them, by its first program."""
    velocity = _velocity(steering)
    start = None
    if velocity:
        problem = frame_problem(context, "the steering")
        if problem or observed is None or context.agent_pos_key not in observed:
            raise ValueError(problem or f"no observation {context.agent_pos_key!r} read where the velocity chunks started")
        start = recorded_starts(context, observed[context.agent_pos_key])
    out = np.full(len(chunks), np.nan)
    finite = np.isfinite(chunks).all(axis=(1, 2)) & (np.isfinite(start).all(axis=1) if velocity else True)
    if finite.any():
        traj = lift_chunks(torch.as_tensor(chunks[finite]), steering.config.position_dims, velocity=velocity,
                           start=None if start is None else torch.as_tensor(start[finite], dtype=torch.float32),
                           dt=context.velocity_step if velocity else 1.0)
        program = np.zeros(int(finite.sum()), np.int64) if stages is None else np.asarray(stages, np.int64)[finite]
        scored = np.full(program.size, np.nan)
        with torch.no_grad():
            for k in np.unique(program[(program >= 0) & (program < len(steering.rewards))]):
                rows = np.flatnonzero(program == k)  # a CheckedReward: shape and finiteness checked
                scored[rows] = steering.rewards[int(k)](traj[torch.as_tensor(rows)]).double().cpu().numpy()
        out[finite] = scored
    return out


def paired_rewards(steering: Any, run: Chunks, base: Chunks, context: FallbackContext | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The rewards of the chunks both runs executed at the same env steps: (with the response, without fiper)."""
    _, i, j = np.intersect1d(run.steps, base.steps, assume_unique=True, return_indices=True)
    stages = None if len(steering.rewards) == 1 or run.stages is None else run.stages[i]  # the response's stage, for both
    got = chunk_rewards(steering, run.executed[i], context, {k: v[i] for k, v in run.seen.items()}, stages)
    ref = chunk_rewards(steering, base.executed[j], context, {k: v[j] for k, v in base.seen.items()}, stages)
    both = np.isfinite(got) & np.isfinite(ref)
    return got[both], ref[both]


def _summary(reward: str, episodes: list[tuple[float, float, int]], note: str = "") -> RewardOutcome:
    if note or not episodes:
        return RewardOutcome(reward, len(episodes), 0, math.nan, math.nan, math.nan, math.nan, note)
    with_, without, n = (np.array(col, dtype=np.float64) for col in zip(*episodes))
    diff = with_ - without
    se = float(diff.std(ddof=1) / math.sqrt(diff.size)) if diff.size > 1 else math.nan
    return RewardOutcome(reward, len(episodes), int(n.sum()), float(with_.mean()), float(without.mean()), float(diff.mean()), se)


def _reward_name(steering: Any) -> str:
    names = [getattr(r, "name", type(r).__name__) for r in steering.rewards]
    return names[0] if len(names) == 1 else " → ".join(names)


def _score_cell(cell: Cell, seeds: list[int], steerings: Mapping[str, Any], runs: Mapping[str, Mapping[Key, Chunks]],
                base: Mapping[Key, Chunks], make_env: Callable[[str, float], Any] | None, notes: dict[str, str],
                results: dict[str, dict[Key, tuple[float, float, int]]],
                contexts: Mapping[str, FallbackContext | None] | None = None) -> None:
    """Score every response of ``steerings`` on the cell's paired episodes, in ``results``; a failure ends that
    response's scoring with a note in ``notes``, never an exception. A reward reading the scene is bound per seed."""
    scene = [name for name in steerings if scene_aware_parts(steerings[name].rewards)]
    env = None
    try:
        for seed in seeds:
            key = (*cell, seed)
            if scene and not all(notes[name] for name in scene):
                try:
                    env = env if env is not None else make_env(cell[0], cell[1])
                    reset_env(env, seed)
                except Exception as err:  # noqa: BLE001  the report stands; the note names what failed
                    for name in scene:
                        notes[name] = notes[name] or (f"the env of cell {cell[0]} {cell[1]:g}, built and reset with seed {seed} "
                                                      f"to read the scene, failed: {type(err).__name__}: {err}; not evaluated")
            for name, steering in steerings.items():
                if notes[name] or key not in runs[name]:
                    continue
                try:
                    if name in scene:
                        bind_scene(steering.rewards, env)
                    got, ref = paired_rewards(steering, runs[name][key], base[key], (contexts or {}).get(name))
                except Exception as err:  # noqa: BLE001  a user program's failure is named, not raised
                    notes[name] = (f"reward {_reward_name(steering)!r} failed on the recorded chunks of {cell[0]} {cell[1]:g}, "
                                   f"seed {seed}: {type(err).__name__}: {err}; not evaluated")
                    continue
                if got.size:
                    results[name][key] = (float(got.mean()), float(ref.mean()), got.size)
    finally:
        if env is not None:
            env.close()


def reward_outcomes(without: str | os.PathLike, arms: Mapping[str, str | os.PathLike], steerings: Mapping[str, Any], *,
                    make_env: Callable[[str, float], Any] | None = None, keys: Collection[Key] | None = None,
                    contexts: Mapping[str, FallbackContext | None] | None = None) -> dict[str, dict[Cell | None, RewardOutcome]]:
    """Per response whose steering has a reward (``steerings``: name -> the response or its steering): its
    RewardOutcome over every paired episode (key None) and per cell. Responses without one are left out. A steering
    of velocity actions reads where its chunks started as its response's FallbackContext (``contexts``) says."""
    contexts = dict(contexts or {})
    steerings = {name: steering_of(s) for name, s in steerings.items() if name in arms and steering_of(s) is not None}
    if not steerings:
        return {}
    notes = {name: "" for name in steerings}
    for name, s in steerings.items():
        if scene_aware_parts(s.rewards) and make_env is None:
            notes[name] = "the reward reads the scene (scene_obstacles()) and no env was given to read it from; not evaluated"
        elif _velocity(s) and frame_problem(contexts.get(name), "the steering"):
            notes[name] = f"{frame_problem(contexts.get(name), 'the steering')}; not evaluated"
    observed = sorted({contexts[n].agent_pos_key for n, s in steerings.items() if _velocity(s) and not notes[n]})
    wanted = (lambda k: True) if keys is None else (lambda k: k in keys)  # noqa: E731
    try:
        try:
            base = {k: v for k, v in executed_chunks(without, observed).items() if wanted(k)}
        except ValueError as err:  # the velocity steerings' start is not recorded: the others are still scored
            if not observed:
                raise
            notes = {n: note or (f"{err}; not evaluated" if _velocity(s) else "") for (n, note), s in
                     zip(notes.items(), steerings.values())}
            observed, base = [], {k: v for k, v in executed_chunks(without).items() if wanted(k)}
    except ValueError as err:
        base, notes = {}, {name: note or f"{err}; not evaluated" for name, note in notes.items()}
    runs: dict[str, dict[Key, Chunks]] = {}
    for name in steerings:
        try:
            asked = [contexts[name].agent_pos_key] if _velocity(steerings[name]) and not notes[name] else []
            runs[name] = {k: v for k, v in executed_chunks(arms[name], asked).items() if k in base}
        except ValueError as err:
            runs[name], notes[name] = {}, notes[name] or f"{err}; not evaluated"
        if len(steerings[name].rewards) > 1 and any(c.stages is None for c in runs[name].values()):
            notes[name] = notes[name] or (f"staged steering ({len(steerings[name].rewards)} reward programs): {arms[name]} records "
                                          "no decisions/steer_stage, the program each decision steered by; record the sweep "
                                          "again to score it; not evaluated")
    cells = sorted({k[:2] for k in base})
    results: dict[str, dict[Key, tuple[float, float, int]]] = {name: {} for name in steerings}
    for cell in cells:
        seeds = sorted({k[2] for name in steerings for k in runs[name] if k[:2] == cell})
        _score_cell(cell, seeds, steerings, runs, base, make_env, notes, results, contexts)
    out = {}
    for name, s in steerings.items():
        label, rows = _reward_name(s), results[name]
        out[name] = {None: _summary(label, list(rows.values()), notes[name])}
        for cell in cells:
            out[name][cell] = _summary(label, [v for k, v in rows.items() if k[:2] == cell], notes[name])
    return out
