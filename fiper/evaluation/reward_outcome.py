"""How well a steering response satisfied its own reward program, from the stores of an outcome sweep.

A steering response picks, at every steered decision, the sampled chunk its reward program scores highest. Whether
that kept the robot out of the zone (or wherever the reward wants it) is read back from what each run executed:
the store's ``decisions/executed`` holds the chunk queued at every decision (NaN where a fallback acted). Every
executed chunk is lifted as steering lifts it (``lift_chunks`` with the steering's ``position_dims`` and
``velocity_actions``) and scored by the same program, in the run with the response and in the run without fiper on
the same (shift, severity, seed), so the comparison is paired:

- an episode's figure is the mean reward of its executed chunks (the policy's whole horizon, as steering scores
  it); decisions a fallback took over executed no chunk and are left out;
- per response, the means over the paired episodes with and without fiper, and the mean of the per-episode
  differences (with − without) with its standard error over those episodes (the seeds are the independent units;
  the decisions of one episode are not).

A reward that reads the scene (``SceneKeepOut``) is bound, for each episode, to the cell's env reset with the
episode's seed (``make_env``; launch.act checks that a seed fixes the episode before anything runs). A reward that
raises or returns a wrong or non-finite value on the recorded chunks is reported as a note naming it, not raised.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from fiper.gym_api import reset_env
from fiper.interventions.scene import bind_scene, scene_aware_parts
from fiper.interventions.trajectory import lift_chunks
from fiper.storage import EpisodeStore

Key = tuple[str, float, int]  # (shift, severity rounded to 6 digits, seed)
Cell = tuple[str, float]


@dataclass(frozen=True)
class RewardOutcome:
    """A steering response's reward on the chunks each run executed, paired by seed (module docstring)."""

    reward: str  # the reward program's name
    episodes: int  # paired episodes in which both runs executed at least one chunk
    decisions: int  # executed chunks scored with the response
    decisions_without: int  # executed chunks scored without fiper, same episodes
    mean: float  # mean over the episodes of the episode's mean reward per executed chunk, with the response
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


def executed_chunks(path: str | os.PathLike) -> dict[Key, np.ndarray]:
    """Per episode of the store, its executed chunks (decisions, H, A); raises ValueError without ``decisions/executed``."""
    store = EpisodeStore.open(path)
    if "executed" not in store.decision_keys:
        raise ValueError(f"{path} lacks decisions/executed (the chunk queued at each decision)")
    executed = np.asarray(store.read_decisions("executed"), dtype=np.float32)
    shift, severity, seed = (store.meta(k) for k in ("shift", "severity", "seed"))
    ends = np.asarray(store.decision_ends, dtype=np.int64)
    return {(str(shift[i]), round(float(severity[i]), 6), int(seed[i])): executed[(int(ends[i - 1]) if i else 0):int(ends[i])]
            for i in range(store.n_episodes)}


def chunk_rewards(steering: Any, chunks: np.ndarray) -> np.ndarray:
    """The steering's reward of every executed (finite) chunk of (decisions, H, A), as steering scores a chunk."""
    chunks = chunks[np.isfinite(chunks).all(axis=(1, 2))]
    if not len(chunks):
        return np.zeros(0)
    traj = lift_chunks(torch.as_tensor(chunks), steering.config.position_dims, velocity=bool(steering.config.velocity_actions))
    with torch.no_grad():
        return steering.rewards[0](traj).double().cpu().numpy()  # a CheckedReward: shape and finiteness checked


def _summary(reward: str, pairs: list[tuple[float, int, float, int]], note: str = "") -> RewardOutcome:
    if note or not pairs:
        return RewardOutcome(reward, len(pairs), 0, 0, math.nan, math.nan, math.nan, math.nan, note)
    with_, n, without, n_without = (np.array(col, dtype=np.float64) for col in zip(*pairs))
    diff = with_ - without
    se = float(diff.std(ddof=1) / math.sqrt(diff.size)) if diff.size > 1 else math.nan
    return RewardOutcome(reward, len(pairs), int(n.sum()), int(n_without.sum()), float(with_.mean()), float(without.mean()),
                         float(diff.mean()), se)


def _reward_name(steering: Any) -> str:
    names = [getattr(r, "name", type(r).__name__) for r in steering.rewards]
    return names[0] if len(names) == 1 else " → ".join(names)


def reward_outcomes(without: str | os.PathLike, arms: Mapping[str, str | os.PathLike], steerings: Mapping[str, Any], *,
                    make_env: Callable[[str, float], Any] | None = None,
                    keys: Collection[Key] | None = None) -> dict[str, dict[Cell | None, RewardOutcome]]:
    """Per response whose steering has a reward (``steerings``: name -> the response or its steering): its
    RewardOutcome over every paired episode (key None) and per cell. Responses without one are left out."""
    steerings = {name: steering_of(s) for name, s in steerings.items() if name in arms and steering_of(s) is not None}
    if not steerings:
        return {}
    notes = {name: "" for name in steerings}
    for name, s in steerings.items():
        if len(s.rewards) > 1:
            notes[name] = (f"staged steering ({len(s.rewards)} reward programs): the stage of each decision is not recorded, "
                           "so no one program scores every executed chunk; not evaluated")
        elif scene_aware_parts(s.rewards) and make_env is None:
            notes[name] = "the reward reads the scene (scene_obstacles()) and no env was given to read it from; not evaluated"
    base, runs = executed_chunks(without), {}
    for name in steerings:
        try:
            runs[name] = executed_chunks(arms[name])
        except ValueError as err:
            notes[name] = notes[name] or f"{err}; not evaluated"
    paired = {name: sorted(k for k in runs.get(name, {}) if k in base and (keys is None or k in keys)) for name in steerings}
    cells = sorted({k[:2] for k in base if keys is None or k in keys})
    results: dict[str, dict[Key, tuple[float, int, float, int]]] = {name: {} for name in steerings}
    for cell in cells:
        todo = [name for name in steerings if not notes[name] and any(k[:2] == cell for k in paired[name])]
        scene = [name for name in todo if scene_aware_parts(steerings[name].rewards)]
        env = None
        if scene:
            try:
                env = make_env(cell[0], cell[1])
            except Exception as err:  # noqa: BLE001  the report stands; the note names what failed
                for name in scene:
                    notes[name] = f"the env of cell {cell[0]} {cell[1]:g}, built to read the scene, failed: {type(err).__name__}: {err}"
                todo = [name for name in todo if name not in scene]
        try:
            for seed in sorted({k[2] for name in todo for k in paired[name] if k[:2] == cell}):
                key = (*cell, seed)
                if env is not None:
                    reset_env(env, seed)
                for name in todo:
                    if notes[name] or key not in paired[name]:
                        continue
                    try:
                        if name in scene:
                            bind_scene(steerings[name].rewards, env)
                        got, ref = chunk_rewards(steerings[name], runs[name][key]), chunk_rewards(steerings[name], base[key])
                    except Exception as err:  # noqa: BLE001  a user program's failure is named, not raised
                        notes[name] = (f"reward {_reward_name(steerings[name])!r} failed on the recorded chunks of {cell[0]} "
                                       f"{cell[1]:g}, seed {seed}: {type(err).__name__}: {err}; not evaluated")
                        continue
                    if got.size and ref.size:
                        results[name][key] = (float(got.mean()), got.size, float(ref.mean()), ref.size)
        finally:
            if env is not None:
                env.close()
    out = {}
    for name, s in steerings.items():
        label, rows = _reward_name(s), results[name]
        out[name] = {None: _summary(label, list(rows.values()), notes[name])}
        for cell in cells:
            out[name][cell] = _summary(label, [v for k, v in rows.items() if k[:2] == cell], notes[name])
    return out
