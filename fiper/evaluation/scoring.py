"""Fit every configured score once on the fit episodes and score all episodes, streaming the sample batches.

Live scores a store may carry (decisions/score/<name>) are ignored: they come from whatever
monitor ran the rollouts, so re-scoring keeps fit data, calibration and evaluation consistent
and makes stores with and without live scores evaluate identically.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from fiper.evaluation.rollouts import RolloutSet
from fiper.scores import ScoreFitData, make_score
from fiper.scores.base import ScoreBase
from fiper.scores import inputs
from fiper.scores.inputs import RowSubset, check_scores, row_nbytes
from fiper.scores.observations import rollout_observations
from fiper.scores.registry import score_class
from fiper.storage import StoreError


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
    read_seconds: float = 0.0  # reading the sample batches for scoring, shared by every score


def episode_blocks(decision_ends: np.ndarray, row_bytes: int, max_bytes: int | None = None) -> Iterator[tuple[slice, np.ndarray]]:
    """(decision rows, their episodes' cumulative ends from 0) of consecutive whole episodes holding at
    most ``max_bytes`` (default inputs.READ_BLOCK_BYTES) of ``row_bytes``-byte decisions (at least one episode per block)."""
    ends = np.asarray(decision_ends, dtype=np.int64)
    per_block = max(1, int(inputs.READ_BLOCK_BYTES if max_bytes is None else max_bytes) // max(1, int(row_bytes)))
    first = 0
    while first < ends.size:
        start = int(ends[first - 1]) if first else 0
        last = max(first, int(np.searchsorted(ends, start + per_block, side="right")) - 1)
        yield slice(start, int(ends[last])), ends[first : last + 1] - start
        first = last + 1


def _fit_data(rollouts: RolloutSet, fit_episodes: np.ndarray, seed: int, device: str, observations: Any = None) -> ScoreFitData:
    """The fit episodes' embeddings (in memory), sample batches (a lazy RowSubset of the stores) and,
    when given, raw observations (lazy too)."""
    rows, fit_ends = episode_rows(rollouts.decision_ends, fit_episodes)
    embeddings = None if rollouts.embeddings is None else rollouts.embeddings[rows]
    samples = None if rollouts.samples is None else RowSubset(rollouts.samples, rows)
    return ScoreFitData(embeddings, samples, fit_ends, seed=seed, device=device,
                        observations=None if observations is None else observations.select(rows))


def fit_and_score(
    rollouts: RolloutSet,
    fit_episodes: np.ndarray,
    specs: Mapping[str, Mapping[str, Any]],
    *,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = False,
) -> ScoredRollouts:
    """Fit each score on ``fit_episodes`` only, then score all decisions of all episodes ('auto' device: CUDA if present).

    Sample batches are never all in memory: scores fit on a lazy view of the fit rows (scores that
    stream them keep only a summary), and scoring reads blocks of whole episodes, each read once
    and scored by every score. Per-decision scores do not depend on the blocking (scores with
    history reset at every episode start), so the result equals scoring the whole store at once.
    """
    from tqdm.auto import tqdm

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    reads_obs = any("observation" in score_class(s["score"]).needs for s in specs.values())  # e.g. obs_novelty
    observations = rollout_observations(rollouts.stores, rollouts.store_index, rollouts.episode_index) if reads_obs else None
    data = _fit_data(rollouts, fit_episodes, seed, device, observations)
    out = ScoredRollouts({}, {}, {n: dict(s) for n, s in specs.items()})
    for name, spec in tqdm(list(specs.items()), desc=f"{rollouts.task}: fit", disable=not progress):
        params = dict(spec)
        kind = params.pop("score")
        start = time.perf_counter()
        try:
            out.fitted[name] = make_score(kind, **params).fit(data)
        except StoreError:  # damaged bytes read while fitting: the store's own error names the files and the fix
            raise
        except ValueError as err:
            raise ValueError(f"fitting score {name!r} ({kind}) on task {rollouts.task!r}: {err}") from err
        except Exception as err:  # a bug inside the score: keep its type and traceback, say which score it was
            err.add_note(f"while fitting score {name!r} ({kind}) on task {rollouts.task!r}")
            raise
        out.fit_seconds[name] = time.perf_counter() - start
    del data
    n = int(rollouts.decision_ends[-1])
    out.raw = {name: np.empty(n, dtype=np.float64) for name in out.fitted}
    out.score_seconds = dict.fromkeys(out.fitted, 0.0)
    read_samples = any("samples" in s.needs for s in out.fitted.values())
    widest = rollouts.samples if rollouts.samples is not None else rollouts.embeddings
    blocks = list(episode_blocks(rollouts.decision_ends, 8 if widest is None else row_nbytes(widest)))
    for rows, ends in tqdm(blocks, desc=f"{rollouts.task}: score", disable=not progress):
        start = time.perf_counter()
        samples = rollouts.samples[rows] if read_samples else None
        out.read_seconds += time.perf_counter() - start
        embeddings = None if rollouts.embeddings is None else rollouts.embeddings[rows]
        for name, score in out.fitted.items():
            start = time.perf_counter()
            seen = {"observations": observations.select(rows)} if "observation" in score.needs else {}
            try:
                out.raw[name][rows] = check_scores(name, score.score_offline(
                    embeddings if "embedding" in score.needs else None, samples if "samples" in score.needs else None, ends, **seen),
                    int(ends[-1]))
            except StoreError:
                raise
            except Exception as err:
                first = int(np.searchsorted(rollouts.decision_ends, rows.start, side="right"))
                where = f"scoring {name!r} on task {rollouts.task!r}, episodes {first}..{first + len(ends) - 1} (of {', '.join(rollouts.stores)})"
                if not isinstance(err, ValueError):  # a bug inside the score: keep its type and traceback
                    err.add_note(f"while {where}")
                    raise
                raise ValueError(f"{where}: {err}") from err
            out.score_seconds[name] += time.perf_counter() - start
    for name, raw in out.raw.items():
        if not np.all(np.isfinite(raw)):
            bad = int(np.flatnonzero(~np.isfinite(raw))[0])
            episode = int(np.searchsorted(rollouts.decision_ends, bad, side="right"))
            raise ValueError(f"score {name!r} is non-finite at decision {bad} (episode {episode}) of task {rollouts.task!r}")
    return out
