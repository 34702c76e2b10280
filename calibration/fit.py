"""Fit thresholds on the windowed scores of successful calibration rollouts.

Input everywhere: ``windowed`` a padded ``(M, T)`` array of windowed scores eta(t) and
``lengths (M,)`` (see calibration.rollouts). Each fit returns a :class:`Threshold`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from calibration.band import band_nonconformity, band_shape, check_ended
from calibration.errors import InsufficientCalibrationError
from calibration.quantile import (
    check_delta,
    conformal_quantile,
    conformal_rank,
    insufficient_message,
    min_calibration_size,
)
from calibration.rollouts import check_rollouts
from calibration.thresholds import THRESHOLD_KINDS, Threshold


def _prepare(windowed, lengths):
    """Validate, trim the padding to the longest rollout and zero it; return (x, lengths, mask)."""
    x, lens, mask = check_rollouts(windowed, lengths, name="calibration scores")
    width = int(lens.max())
    x, mask = x[:, :width], mask[:, :width]
    return np.where(mask, x, 0.0), lens, mask


def rollout_maxima(windowed: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-rollout maximum over alive steps, batched: ``(..., n, T) -> (..., n)``."""
    return np.where(mask, windowed, -np.inf).max(axis=-1)


def fit_constant(windowed, lengths=None, delta: float = 0.1) -> Threshold:
    """gamma = the ceil((M+1)(1-delta))-th smallest per-rollout maximum (guaranteed)."""
    delta = check_delta(delta)
    x, lens, mask = _prepare(windowed, lengths)
    gamma = conformal_quantile(rollout_maxima(x, mask), delta)
    return Threshold("constant", delta, np.array([gamma]), x.shape[0], True)


def band_split(num_rollouts: int, d1_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random split of rollout indices into D1 (mean, modulation) and D2 (height)."""
    if not (0.0 < float(d1_fraction) < 1.0):
        raise ValueError(f"d1_fraction must lie strictly between 0 and 1, got {d1_fraction}")
    if num_rollouts < 2:
        raise InsufficientCalibrationError(
            f"the band threshold splits calibration rollouts into D1 and D2 and needs M >= 2, got M={num_rollouts}"
        )
    n1 = int(np.clip(np.floor(d1_fraction * num_rollouts), 1, num_rollouts - 1))
    perm = np.random.default_rng(seed).permutation(num_rollouts)
    return np.sort(perm[:n1]), np.sort(perm[n1:])


def min_band_size(delta: float, d1_fraction: float) -> int:
    """Smallest total M whose D2 part can attain the corrected (1-delta) quantile."""
    need2 = min_calibration_size(delta)
    m = need2 + 1
    while m - int(np.clip(np.floor(d1_fraction * m), 1, m - 1)) < need2:
        m += 1
    return m


def split_d1_d2(num_rollouts: int, delta: float, d1_fraction: float, seed: int, who: str = "") -> tuple[np.ndarray, np.ndarray]:
    """``band_split``, refusing a D2 part too small for delta with the total M that would do."""
    d1, d2 = band_split(num_rollouts, d1_fraction, seed)
    if conformal_rank(d2.size, delta) > d2.size:
        raise InsufficientCalibrationError(
            insufficient_message(d2.size, delta, what="D2 rollouts") + f" {who}With d1_fraction={d1_fraction:g} that means at "
            f"least {min_band_size(delta, d1_fraction)} calibration rollouts in total (got M={num_rollouts})."
        )
    return d1, d2


def fit_band(
    windowed,
    lengths=None,
    delta: float = 0.1,
    *,
    d1_fraction: float = 0.5,
    seed: int = 0,
    modulation_floor: float = 1e-3,
    ended: str = "hold",
) -> Threshold:
    """Functional band gamma(t) = mu(t) + h s(t) (one-sided, guaranteed).

    mu and s come from D1 (``ended``: how D1 rollouts shorter than t enter them, see
    ``band_shape``); h is the corrected (1-delta) quantile over D2 of
    sup_t (score(t) - mu(t)) / s(t), over each D2 rollout's own steps. The guarantee needs only
    D2 to be exchangeable with the test rollout; D1 may be anything independent of D2.
    """
    delta = check_delta(delta)
    check_ended(ended)
    x, lens, mask = _prepare(windowed, lengths)
    num = x.shape[0]
    d1, d2 = split_d1_d2(num, delta, d1_fraction, seed)
    mu, s = band_shape(x[d1], mask[d1], delta, modulation_floor, ended)
    h = conformal_quantile(band_nonconformity(x[d2], mask[d2], mu, s), delta)
    params = {
        "mean": mu,
        "modulation": s,
        "height": float(h),
        "num_d1": int(d1.size),
        "num_d2": int(d2.size),
        "d1_fraction": float(d1_fraction),
        "seed": int(seed),
        "modulation_floor": float(modulation_floor),
        "ended": ended,
    }
    return Threshold("band", delta, mu + h * s, num, True, params)


def fit_time_varying(windowed, lengths=None, delta: float = 0.1) -> Threshold:
    """gamma(t) = per-step quantile across calibration rollouts alive at t (no guarantee).

    Uses the corrected rank ceil((n_t+1)(1-delta)) among the n_t rollouts alive at step t,
    capped at n_t (the largest alive value) once too few rollouts remain. It controls the
    false-alarm rate of each step separately, not of the whole rollout, hence guaranteed=False.
    """
    delta = check_delta(delta)
    x, lens, mask = _prepare(windowed, lengths)
    num = x.shape[0]
    if conformal_rank(num, delta) > num:
        raise InsufficientCalibrationError(insufficient_message(num, delta))
    alive = mask.sum(axis=0)  # (T,), >= 1 everywhere after trimming
    rank = np.ceil((alive + 1) * (1.0 - delta) - 1e-9).astype(np.int64)
    rank = np.clip(rank, 1, alive)
    ordered = np.sort(np.where(mask, x, np.inf), axis=0)
    curve = ordered[rank - 1, np.arange(x.shape[1])]
    return Threshold("time_varying", delta, curve, num, False, {"num_alive": alive.astype(np.int64)})


_FITTERS = {"constant": fit_constant, "band": fit_band, "time_varying": fit_time_varying}


def fit_threshold(kind: str, windowed, lengths=None, delta: float = 0.1, **options) -> Threshold:
    """Fit a threshold by kind name: 'constant', 'band' (accepts d1_fraction, seed, ...) or 'time_varying'."""
    if kind not in _FITTERS:
        raise ValueError(f"unknown threshold kind {kind!r}; expected one of {sorted(THRESHOLD_KINDS)}")
    if options and kind != "band":
        raise ValueError(f"threshold kind {kind!r} takes no options, got {sorted(options)}")
    return _FITTERS[kind](windowed, lengths, delta, **options)


def fit_threshold_grid(kind: str, windowed, lengths=None, deltas: Sequence[float] = (0.1,), **options) -> list[Threshold]:
    """One threshold per delta of a grid (e.g. 1-delta in 0.90..0.99), same data and options."""
    return [fit_threshold(kind, windowed, lengths, float(d), **options) for d in deltas]
