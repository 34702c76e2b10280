"""Alarms of a jointly calibrated method (calibration.fit_joint) for every window candidate.

The shared height depends on the combination of per-score windows, so thresholds are fitted per
candidate and delta (a loop over grid cells only) and the alarms then reuse ``candidate_alarms``
on one-window views of the score grids.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from calibration import fit_joint
from fiper.evaluation.grid import CandidateAlarms, ScoreGrid, candidate_alarms


def joint_candidate_alarms(
    grids: Sequence[ScoreGrid],
    window_indices: Sequence[Sequence[int]],
    kind: str,
    rule: str,
    episodes: np.ndarray,
    lengths: np.ndarray,
    calibration: np.ndarray,
    deltas: Sequence[float],
    *,
    d1_fraction: float = 0.5,
    seed: int = 0,
) -> CandidateAlarms:
    """Like ``candidate_alarms``, with thresholds calibrated jointly on ``calibration`` episodes."""
    candidates = list(itertools.product(*[[int(i) for i in idx] for idx in window_indices]))
    firsts, maxima = [], []
    for cand in candidates:
        per_delta = [joint_curves(grids, cand, kind, rule, lengths, calibration, delta, d1_fraction=d1_fraction, seed=seed)
                     for delta in deltas]
        views = [replace(g, eta=g.eta[w : w + 1], gamma={kind: np.stack([c[i] for c in per_delta])[None]})
                 for i, (g, w) in enumerate(zip(grids, cand))]
        one = candidate_alarms(views, [[0]] * len(grids), kind, rule, episodes, lengths)
        firsts.append(one.first_alarm)
        maxima.append(one.max_ratio)
    return CandidateAlarms(candidates, np.concatenate(firsts), np.concatenate(maxima))


def joint_curves(
    grids: Sequence[ScoreGrid],
    windows: Sequence[int],
    kind: str,
    rule: str,
    lengths: np.ndarray,
    calibration: np.ndarray,
    delta: float,
    *,
    d1_fraction: float = 0.5,
    seed: int = 0,
) -> list[np.ndarray]:
    """Each score's (T,) threshold curve under one shared height, fitted on ``calibration`` at one window index per score."""
    fitted = fit_joint(kind, {g.name: g.eta[w][calibration] for g, w in zip(grids, windows)}, lengths[calibration],
                       float(delta), rule=rule, d1_fraction=d1_fraction, seed=seed)
    return [fitted[g.name].values(grids[0].eta.shape[-1]) for g in grids]
