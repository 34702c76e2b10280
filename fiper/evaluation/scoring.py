"""Fit every configured score once on the fit episodes and score all episodes in one call each.

Live scores a store may carry (decisions/score/<name>) are ignored: they come from whatever
monitor ran the rollouts, so re-scoring keeps fit data, calibration and evaluation consistent
and makes stores with and without live scores evaluate identically.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from fiper.evaluation.rollouts import RolloutSet
from fiper.scores import ScoreFitData, make_score
from fiper.scores.base import ScoreBase


def episode_rows(decision_ends: np.ndarray, episodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Decision rows of ``episodes`` (concatenated, in the given order) and their new cumulative ends."""
    ends = np.asarray(decision_ends, dtype=np.int64)
    starts = np.concatenate([[0], ends[:-1]])
    eps = np.asarray(episodes, dtype=np.int64)
    lengths = ends[eps] - starts[eps]
    offsets = np.repeat(starts[eps] - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    rows = np.arange(int(lengths.sum()), dtype=np.int64) + offsets
    return rows, np.cumsum(lengths).astype(np.int64)


def infer_n_action_steps(rollouts: RolloutSet) -> int:
    """Env steps per decision: the store attrs, else the median env_step spacing within episodes."""
    if rollouts.n_action_steps is not None:
        return int(rollouts.n_action_steps)
    gaps = np.diff(rollouts.env_step)
    first = np.zeros(gaps.shape[0] + 1, dtype=bool)
    first[np.concatenate([[0], rollouts.decision_ends[:-1]])] = True
    within = gaps[~first[1:]]
    within = within[within > 0]
    if within.size == 0:
        raise ValueError(
            f"task {rollouts.task!r}: cannot tell how many env steps a decision executes (no 'n_action_steps' "
            "store attr and no env_step spacing); set scores.stac.n_action_steps"
        )
    return int(np.median(within))


def resolve_specs(scores: Mapping[str, Mapping[str, Any]], names: Sequence[str], rollouts: RolloutSet) -> dict[str, dict[str, Any]]:
    """Registry name and parameters of each used score; STAC's n_action_steps filled from the store."""
    out = {}
    for name in names:
        spec = dict(scores[name])
        kind = spec.pop("score", name)
        if kind == "stac" and spec.get("n_action_steps") is None:
            spec["n_action_steps"] = infer_n_action_steps(rollouts)
        out[name] = {"score": kind, **spec}
    return out


@dataclass
class ScoredRollouts:
    """Raw per-decision scores (N,) of every episode for each score, and the fitted scores."""

    raw: dict[str, np.ndarray]
    fitted: dict[str, ScoreBase]
    specs: dict[str, dict[str, Any]]
    fit_seconds: dict[str, float] = field(default_factory=dict)
    score_seconds: dict[str, float] = field(default_factory=dict)


def fit_and_score(
    rollouts: RolloutSet,
    fit_episodes: np.ndarray,
    specs: Mapping[str, Mapping[str, Any]],
    *,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = False,
) -> ScoredRollouts:
    """Fit each score on ``fit_episodes`` only, then score all decisions of all episodes ('auto' device: CUDA if present)."""
    from tqdm.auto import tqdm

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    rows, fit_ends = episode_rows(rollouts.decision_ends, fit_episodes)
    contiguous = rows.size and np.all(np.diff(rows) == 1)
    take = (lambda a: a[int(rows[0]) : int(rows[-1]) + 1]) if contiguous else (lambda a: a[rows])
    data = ScoreFitData(take(rollouts.embeddings), take(rollouts.samples), fit_ends, seed=seed, device=device)
    out = ScoredRollouts({}, {}, {n: dict(s) for n, s in specs.items()})
    for name, spec in tqdm(list(specs.items()), desc=f"{rollouts.task}: fit + score", disable=not progress):
        params = dict(spec)
        kind = params.pop("score")
        start = time.perf_counter()
        try:
            score = make_score(kind, **params).fit(data)
        except ValueError as err:
            raise ValueError(f"fitting score {name!r} ({kind}) on task {rollouts.task!r}: {err}") from err
        out.fit_seconds[name] = time.perf_counter() - start
        start = time.perf_counter()
        raw = score.score_offline(
            rollouts.embeddings if "embedding" in score.needs else None,
            rollouts.samples if "samples" in score.needs else None,
            rollouts.decision_ends,
        )
        out.score_seconds[name] = time.perf_counter() - start
        if not np.all(np.isfinite(raw)):
            bad = int(np.flatnonzero(~np.isfinite(raw))[0])
            episode = int(np.searchsorted(rollouts.decision_ends, bad, side="right"))
            raise ValueError(f"score {name!r} is non-finite at decision {bad} (episode {episode}) of task {rollouts.task!r}")
        out.raw[name], out.fitted[name] = raw, score
    return out
