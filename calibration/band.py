"""Building blocks of the functional (band) threshold, batched over leading dimensions.

Each takes padded scores ``(..., n, T)`` with an alive mask of the same shape and reduces over
rollouts (axis -2) or steps (axis -1), so one call can fit thousands of independent
calibration sets at once (see the validity study in tests/calibration). ``band_shape`` gives
the D1 part (mean and modulation) as ``fit_band`` and ``fit_joint`` use it.
"""

from __future__ import annotations

import numpy as np

from calibration.quantile import conformal_rank

#: How D1 rollouts that ended before step t enter mu(t) and s(t): 'hold' keeps their last
#: windowed value (the default), 'drop' leaves them out (the published band: only rollouts alive at t).
ENDED_MODES = ("hold", "drop")


def forward_fill(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Replace entries where ``valid`` is False by the last valid entry before them (axis -1).

    Index 0 must be valid in every row (every rollout has at least one step).
    """
    idx = np.where(valid, np.arange(values.shape[-1]), 0)
    np.maximum.accumulate(idx, axis=-1, out=idx)
    return np.take_along_axis(values, idx, axis=-1)


def band_center(scores: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """mu(t) = mean over the rollouts alive at t; extended with its last value past them all."""
    count = mask.sum(axis=-2)
    total = np.where(mask, scores, 0.0).sum(axis=-2)
    alive = count > 0
    mu = np.divide(total, count, out=np.zeros_like(total), where=alive)
    return forward_fill(mu, alive)


def band_modulation(
    scores: np.ndarray, mask: np.ndarray, mu: np.ndarray, delta: float, floor: float = 1e-3
) -> np.ndarray:
    """s(t) = largest |score(t) - mu(t)| among the D1 rollouts inside the (1-delta) quantile.

    A rollout is inside when its sup-norm deviation sup_t |score - mu| is at most the
    min(ceil((n+1)(1-delta)), n)-th smallest of the n sup-norms, so the most extreme D1
    rollouts do not widen the band. s is extended with its last value past the kept rollouts
    and raised to ``floor * max_t s(t)`` (and a tiny absolute level) so that dividing by it is
    safe; any positive s keeps the guarantee.
    """
    dev = np.where(mask, np.abs(scores - mu[..., None, :]), 0.0)
    sup = np.where(mask, dev, -np.inf).max(axis=-1)  # (..., n)
    n = sup.shape[-1]
    k = min(conformal_rank(n, delta), n)
    cutoff = np.sort(sup, axis=-1)[..., k - 1 : k]  # (..., 1)
    kept = mask & (sup <= cutoff)[..., None]
    s = np.where(kept, dev, 0.0).max(axis=-2)
    s = forward_fill(s, kept.any(axis=-2))
    scale = np.maximum(np.abs(mu).max(axis=-1, keepdims=True), 1.0)
    lowest = np.maximum(floor * s.max(axis=-1, keepdims=True), 1e-9 * scale)
    return np.maximum(s, lowest)


def band_nonconformity(scores: np.ndarray, mask: np.ndarray, mu: np.ndarray, s: np.ndarray) -> np.ndarray:
    """R_i = sup over rollout i's steps of (score(t) - mu(t)) / s(t): one value per rollout.

    gamma(t) = mu(t) + h s(t) is exceeded somewhere by rollout i exactly when R_i > h (s > 0).
    """
    ratio = (scores - mu[..., None, :]) / s[..., None, :]
    return np.where(mask, ratio, -np.inf).max(axis=-1)


def hold_ended(scores: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every rollout extended to all T steps with its last value: (held scores, all-True mask)."""
    return forward_fill(scores, mask), np.ones_like(mask, dtype=bool)


def check_ended(ended: str) -> str:
    if ended not in ENDED_MODES:
        raise ValueError(f"ended must be one of {ENDED_MODES} ('hold': ended D1 rollouts keep their last value in mu and s; "
                         f"'drop': only rollouts alive at t count), got {ended!r}")
    return ended


def band_shape(scores: np.ndarray, mask: np.ndarray, delta: float, floor: float = 1e-3,
               ended: str = "hold") -> tuple[np.ndarray, np.ndarray]:
    """(mu(t), s(t)) of the D1 rollouts ``(..., n1, T)``.

    With ``ended='hold'`` a D1 rollout that has ended holds its last windowed value, as a
    threshold holds its last value past its end, so mu and s at late steps rest on all n1
    rollouts rather than on the few still running (with 'drop', one rollout alive at t makes
    s(t) = 0, floored, and the height h, a sup over D2 of (eta - mu) / s, explodes). mu and s
    depend on D1 only, so the guarantee, which rests on D2, is unchanged.
    """
    if check_ended(ended) == "hold":
        scores, mask = hold_ended(scores, mask)
    mu = band_center(scores, mask)
    return mu, band_modulation(scores, mask, mu, delta, floor)
