"""The evaluation grid with array operations: windows x threshold types x deltas, per method.

Per score, one ``windowed_sum`` call gives every window (W, E, T); thresholds are fitted on the
calibration episodes for each (window, type, delta). Alarms of a method are evaluated for all its
window candidates (every combination of per-score windows) and all deltas at once by
broadcasting the per-score exceedances ``eta > gamma`` and ratios; the only Python loops run over
grid cells (windows, types), never over decisions or episodes.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from calibration import Threshold, fit_threshold_grid, step_mask
from fiper.aggregation import first_alarm_index, threshold_ratio, windowed_sum
from fiper.rules import get_rule
from fiper.evaluation.config import EPISODE


def resolve_windows(labels: Sequence[int | str], max_length: int) -> np.ndarray:
    """Window lengths in decisions; 'episode' becomes the task's longest episode (a cumulative sum)."""
    return np.array([int(max_length) if w == EPISODE else int(w) for w in labels], dtype=np.int64)


@dataclass
class ScoreGrid:
    """One score's windowed sums for every window, and its thresholds per (type, window, delta)."""

    name: str
    labels: tuple[int | str, ...]  # window labels as configured
    windows: np.ndarray  # (W,) decisions
    eta: np.ndarray  # (W, E, T) windowed scores of all episodes (NaN past each length)
    thresholds: dict[str, list[list[Threshold]]]  # kind -> [window][delta]
    gamma: dict[str, np.ndarray]  # kind -> (W, n_deltas, T) threshold curves

    def index(self, label: int | str) -> int:
        return self.labels.index(label)


def build_score_grid(
    name: str,
    padded: np.ndarray,
    lengths: np.ndarray,
    labels: Sequence[int | str],
    calibration: np.ndarray,
    kinds: Sequence[str],
    deltas: Sequence[float],
    *,
    d1_fraction: float = 0.5,
    seed: int = 0,
) -> ScoreGrid:
    """Window all episodes at once and fit every threshold on the calibration episodes only."""
    num_steps = padded.shape[1]
    windows = resolve_windows(labels, int(lengths.max()))
    eta = windowed_sum(padded, windows, lengths)  # (W, E, T)
    cal_lengths = lengths[calibration]
    thresholds: dict[str, list[list[Threshold]]] = {}
    gamma: dict[str, np.ndarray] = {}
    for kind in kinds:
        options = {"d1_fraction": d1_fraction, "seed": seed} if kind == "band" else {}
        per_window = [fit_threshold_grid(kind, eta[w, calibration], cal_lengths, deltas, **options) for w in range(len(windows))]
        thresholds[kind] = per_window
        gamma[kind] = np.stack([np.stack([th.values(num_steps) for th in row]) for row in per_window])
    return ScoreGrid(name, tuple(labels), windows, eta, thresholds, gamma)


@dataclass
class CandidateAlarms:
    """First alarms and per-rollout maximum combined ratios of a method's window candidates."""

    candidates: list[tuple[int, ...]]  # window index per score, one tuple per candidate
    first_alarm: np.ndarray  # (C, n_deltas, n) decision of the first alarm, -1 if none
    max_ratio: np.ndarray  # (C, n_deltas, n) maximum over the rollout of the combined ratio


def _place(arr: np.ndarray, axis: int, num_axes: int) -> np.ndarray:
    """Give ``arr`` (W, ...) its window axis at position ``axis`` of ``num_axes`` window axes."""
    shape = (1,) * axis + (arr.shape[0],) + (1,) * (num_axes - axis - 1) + arr.shape[1:]
    return arr.reshape(shape)


def candidate_alarms(
    grids: Sequence[ScoreGrid],
    window_indices: Sequence[Sequence[int]],
    kind: str,
    rule: str,
    episodes: np.ndarray,
    lengths: np.ndarray,
) -> CandidateAlarms:
    """Alarms of every combination of per-score windows (``window_indices[k]`` for score k), all deltas.

    Exceedances and ratios are broadcast over the window axes of the scores (a loop runs over the
    first score's windows only, to bound memory) and combined by the registered rule (fiper.rules).
    """
    episodes = np.asarray(episodes, dtype=np.int64)
    if episodes.size == 0:
        raise ValueError("no episodes to evaluate alarms on (an empty split part)")
    lens = lengths[episodes]
    width = int(lens.max())
    mask = step_mask(lens, width)  # (n, T)
    exceed, ratios = [], []
    for grid, idx in zip(grids, window_indices):
        idx = np.asarray(idx, dtype=np.int64)
        eta = grid.eta[idx][:, episodes, :width][:, None]  # (Wk, 1, n, T)
        gam = grid.gamma[kind][idx][:, :, None, :width]  # (Wk, D, 1, T)
        with np.errstate(invalid="ignore"):
            exceed.append(eta > gam)  # NaN padding compares False
        ratios.append(threshold_ratio(eta, gam))
    k = len(grids)
    combo = get_rule(rule).check(k)
    rest_e = [_place(e, j, k - 1) for j, e in enumerate(exceed[1:])]
    rest_r = [_place(r, j, k - 1) for j, r in enumerate(ratios[1:])]
    n_deltas = exceed[0].shape[1]
    firsts, maxima = [], []
    for i in range(exceed[0].shape[0]):
        alarm = combo.alarm(np.stack(np.broadcast_arrays(exceed[0][i], *rest_e)), axis=0).reshape(-1, n_deltas, episodes.size, width)
        combined = combo.ratio(np.stack(np.broadcast_arrays(ratios[0][i], *rest_r)), axis=0).reshape(alarm.shape)
        firsts.append(first_alarm_index(alarm))
        maxima.append(np.where(mask, combined, -np.inf).max(axis=-1))
    candidates = list(itertools.product(*[[int(i) for i in idx] for idx in window_indices]))
    return CandidateAlarms(candidates, np.concatenate(firsts), np.concatenate(maxima))
