"""Finite-sample validity of the guaranteed thresholds, by simulation over many splits.

Each of S independent splits draws fresh exchangeable successful rollouts: M for calibration,
K for testing. The false-alarm rate (any alarm in a test rollout) must be <= delta + 3 SE, where
SE is the standard error of the mean over splits. A plain np.quantile at small M must violate
the same bound, which shows the test can fail.
"""

from __future__ import annotations

import numpy as np
import pytest

from calibration import band_nonconformity, band_shape, conformal_quantile, rollout_maxima
from calibration.rollouts import step_mask
from synthetic_rollouts import ar1_scores, windowed_batch

SPLITS, NUM_CAL, NUM_TEST, STEPS, WINDOW = 2000, 40, 10, 40, 5


@pytest.fixture(scope="module")
def study():
    """Windowed scores for S splits: calibration (S, M, T) and test (S, K, T), two scores each."""
    rng = np.random.default_rng(1234)
    s1, s2, lengths = ar1_scores(rng, (SPLITS, NUM_CAL + NUM_TEST), STEPS)
    eta1, eta2 = windowed_batch(s1, lengths, WINDOW), windowed_batch(s2, lengths, WINDOW)
    mask = step_mask(lengths, STEPS)
    cal, test = slice(0, NUM_CAL), slice(NUM_CAL, None)
    return {
        "cal": (np.where(mask, eta1, 0)[:, cal], np.where(mask, eta2, 0)[:, cal], mask[:, cal]),
        "test": (eta1[:, test], eta2[:, test], mask[:, test]),
    }


def _rate_and_se(alarm: np.ndarray) -> tuple[float, float]:
    """alarm (S, K) bool -> overall rate and its standard error over independent splits."""
    per_split = alarm.mean(axis=1)
    return float(per_split.mean()), float(per_split.std(ddof=1) / np.sqrt(per_split.size))


def _any_alarm(exceed: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return (exceed & mask).any(axis=-1)


def _constant(eta, mask, delta):
    return conformal_quantile(rollout_maxima(eta, mask), delta)[:, None, None]  # (S, 1, 1)


def _band(eta, mask, delta, n1=NUM_CAL // 2):
    """Same building blocks as fit_band (ended D1 rollouts held); D1 = first n1 (the rollouts are i.i.d. per split)."""
    mu, s = band_shape(eta[:, :n1], mask[:, :n1], delta)
    h = conformal_quantile(band_nonconformity(eta[:, n1:], mask[:, n1:], mu, s), delta)
    return (mu + h[:, None] * s)[:, None, :]  # (S, 1, T)


@pytest.mark.parametrize("delta", [0.05, 0.1])
@pytest.mark.parametrize("kind", ["constant", "band"])
def test_false_alarm_rate_at_most_delta(study, kind, delta):
    fit = _constant if kind == "constant" else _band
    (c1, c2, cmask), (t1, t2, tmask) = study["cal"], study["test"]
    g1, g2 = fit(c1, cmask, delta), fit(c2, cmask, delta)
    single = _any_alarm(t1 > g1, tmask)
    both = _any_alarm((t1 > g1) & (t2 > g2), tmask)
    rate, se = _rate_and_se(single)
    assert rate <= delta + 3 * se, f"{kind}: false-alarm rate {rate:.4f} > delta {delta} + 3 SE ({se:.4f})"
    # Not vacuous: the corrected quantile is tight, P >= delta - 1/(n+1) for continuous scores.
    n = NUM_CAL if kind == "constant" else NUM_CAL - NUM_CAL // 2
    assert rate >= delta - 1 / (n + 1) - 3 * se, f"{kind}: rate {rate:.4f} is far below delta {delta}"
    and_rate, and_se = _rate_and_se(both)
    assert and_rate <= delta + 3 * and_se, f"{kind} AND: rate {and_rate:.4f} > delta {delta} + 3 SE"
    assert and_rate <= rate  # AND can only alarm less than either indicator alone


@pytest.mark.parametrize(("num_cal", "delta"), [(10, 0.1), (20, 0.05)])
def test_uncorrected_quantile_violates_the_bound(study, num_cal, delta):
    (c1, _, cmask), (t1, _, tmask) = study["cal"], study["test"]
    maxima = rollout_maxima(c1[:, :num_cal], cmask[:, :num_cal])
    plain = np.quantile(maxima, 1 - delta, axis=1)[:, None, None]
    rate, se = _rate_and_se(_any_alarm(t1 > plain, tmask))
    assert rate > delta + 3 * se, f"plain np.quantile unexpectedly valid: {rate:.4f} <= {delta} + 3 SE"
    corrected = conformal_quantile(maxima, delta)[:, None, None]
    ok_rate, ok_se = _rate_and_se(_any_alarm(t1 > corrected, tmask))
    assert ok_rate <= delta + 3 * ok_se


@pytest.mark.parametrize("delta", [0.05, 0.1])
def test_band_with_uncorrected_height_violates_the_bound(study, delta):
    """The band's height h needs the corrected quantile too (D2 has only 20 rollouts here)."""
    (c1, _, cmask), (t1, _, tmask) = study["cal"], study["test"]
    n1 = NUM_CAL // 2
    mu, s = band_shape(c1[:, :n1], cmask[:, :n1], delta)
    h = np.quantile(band_nonconformity(c1[:, n1:], cmask[:, n1:], mu, s), 1 - delta, axis=1)
    rate, se = _rate_and_se(_any_alarm(t1 > (mu + h[:, None] * s)[:, None, :], tmask))
    assert rate > delta + 3 * se
