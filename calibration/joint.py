"""Joint calibration of a multi-score alarm: one conformal height shared by every indicator.

Calibrating each indicator of an AND alarm at level delta bounds the combined false-alarm rate by
delta but spends far less than delta (the AND fires only where every indicator does), so the
alarm is late and misses failures. Joint calibration puts the combined statistic itself through
the conformal quantile. D1 (a seeded part of the calibration rollouts) fixes each score's shape:

- constant: z_k(t) = eta_k(t) / c_k, c_k the plain (1-delta) quantile of score k's D1 maxima;
- band:     z_k(t) = (eta_k(t) - mu_k(t)) / s_k(t), mu_k and s_k as in the band (D1).

The nonconformity of a D2 rollout is R = sup_t min_k z_k(t) (AND; max_k for OR) and h is the
finite-sample-corrected (1-delta) quantile of R over D2. The per-score thresholds
gamma_k = h c_k (constant) or mu_k + h s_k (band) then alarm exactly when some min_k z_k(t) > h,
so P(any false alarm on a new exchangeable successful rollout) <= delta holds for the combined
alarm, with equality up to the rank rounding instead of the per-score bound's slack.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from calibration.band import band_shape, check_ended
from calibration.fit import rollout_maxima, split_d1_d2
from calibration.quantile import check_delta, conformal_quantile
from calibration.rollouts import check_rollouts
from calibration.thresholds import Threshold

JOINT_KINDS = ("constant", "band")
JOINT_RULES = ("and", "or")


def _prepared(windowed: Mapping[str, np.ndarray], lengths) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Check every score's padded (M, T) array against one set of lengths; zero the padding."""
    if len(windowed) < 1:
        raise ValueError("joint calibration needs at least one score")
    shapes = {name: np.shape(values) for name, values in windowed.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"joint calibration: the scores' padded arrays have shapes {shapes} that differ from the other scores'; "
                         "pass the windowed scores of the same calibration rollouts (M, T) for every score")
    out, lens, mask = {}, None, None
    for name, values in windowed.items():
        out[name], lens, mask = check_rollouts(values, lengths, name=f"calibration scores of {name!r}")
    width = int(lens.max())
    return {n: np.where(mask[:, :width], x[:, :width], 0.0) for n, x in out.items()}, lens, mask[:, :width]


def _positive_scale(maxima: np.ndarray, delta: float, name: str) -> float:
    """c_k: plain (1-delta) quantile of the D1 maxima (D1 needs no guarantee); must be > 0. A score that is never
    negative and sits at 0 there (the clock, when the D1 successes end at their first decision) takes its smallest
    positive D1 maximum, else 1: any positive scale fixed by D1 keeps the guarantee, which the D2 height carries."""
    scale = float(np.quantile(maxima, 1.0 - delta, method="higher"))
    if scale == 0 and maxima.min() >= 0:
        positive = maxima[maxima > 0]
        scale = float(positive.min()) if positive.size else 1.0
    if not scale > 0:
        raise ValueError(f"joint constant calibration: score {name!r} has a non-positive (1-delta) quantile {scale:g} of its "
                         "D1 maxima, so its ratio to a scale is meaningless; use kind='band' for scores that are not positive")
    return scale


def fit_joint(
    kind: str,
    windowed: Mapping[str, np.ndarray],
    lengths=None,
    delta: float = 0.1,
    *,
    rule: str = "and",
    d1_fraction: float = 0.5,
    seed: int = 0,
    modulation_floor: float = 1e-3,
    ended: str = "hold",
) -> dict[str, Threshold]:
    """Per-score thresholds of one jointly calibrated alarm (see the module docstring).

    ``windowed`` maps score name -> padded (M, T) windowed scores of the same M successful
    calibration rollouts. Returns score name -> Threshold of the requested kind (guaranteed for
    the combined alarm under ``rule``); params carry the shared height and the D1/D2 sizes.
    """
    if kind not in JOINT_KINDS:
        raise ValueError(f"joint calibration supports kinds {JOINT_KINDS}, got {kind!r} (time-varying thresholds carry no guarantee to share)")
    if rule not in JOINT_RULES:
        raise ValueError(f"joint calibration combines indicators by {JOINT_RULES}, got rule {rule!r}")
    delta = check_delta(delta)
    check_ended(ended)
    x, lens, mask = _prepared(windowed, lengths)
    d1, d2 = split_d1_d2(lens.size, delta, d1_fraction, seed, who="Joint calibration splits the rollouts like the band. ")
    shapes: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # name -> (offset(t), scale(t))
    for name, values in x.items():
        if kind == "constant":
            scale = _positive_scale(rollout_maxima(values[d1], mask[d1]), delta, name)
            shapes[name] = (np.zeros(values.shape[1]), np.full(values.shape[1], scale))
        else:
            shapes[name] = band_shape(values[d1], mask[d1], delta, modulation_floor, ended)
    z = np.stack([(x[n][d2] - off) / sc for n, (off, sc) in shapes.items()])  # (K, |D2|, T)
    combined = z.min(axis=0) if rule == "and" else z.max(axis=0)
    h = float(conformal_quantile(rollout_maxima(combined, mask[d2]), delta))
    common = {"joint": True, "rule": rule, "scores": list(x), "height": h, "num_d1": int(d1.size), "num_d2": int(d2.size),
              "d1_fraction": float(d1_fraction), "seed": int(seed)}
    out = {}
    for name, (off, sc) in shapes.items():
        if kind == "constant":
            params = {**common, "scale": float(sc[0])}
            out[name] = Threshold("constant", delta, np.array([h * sc[0]]), lens.size, True, params)
        else:
            params = {**common, "mean": off, "modulation": sc, "modulation_floor": float(modulation_floor), "ended": ended}
            out[name] = Threshold("band", delta, off + h * sc, lens.size, True, params)
    return out
