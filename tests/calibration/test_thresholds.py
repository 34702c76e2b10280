"""Constant, band and time-varying thresholds: values by hand, guarantees, extension, errors."""

from __future__ import annotations

import numpy as np
import pytest

from calibration import (
    InsufficientCalibrationError,
    Threshold,
    band_center,
    band_modulation,
    band_nonconformity,
    band_split,
    conformal_quantile,
    fit_band,
    fit_constant,
    fit_threshold,
    fit_threshold_grid,
    fit_time_varying,
    pad_rollouts,
)
from calibration.rollouts import step_mask


def _random_set(seed=0, num=40, steps=30):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(steps // 2, steps + 1, num)
    scores = np.abs(rng.standard_normal((num, steps))).cumsum(axis=1)
    scores[np.arange(steps) >= lengths[:, None]] = np.nan
    return scores, lengths


def test_constant_is_corrected_quantile_of_rollout_maxima():
    scores, lengths = pad_rollouts([[0.0, 5.0, 1.0], [2.0], [3.0, 9.0], [4.0, 4.0, 4.0, 8.0]] * 5)
    th = fit_constant(scores, lengths, 0.2)  # maxima {5, 2, 9, 8} x 5; rank ceil(21 * 0.8) = 17
    assert th.kind == "constant" and th.guaranteed and th.num_calibration == 20
    assert th(0) == 9.0 == np.sort([5.0, 2.0, 9.0, 8.0] * 5)[16]
    assert fit_constant(scores, lengths, 0.5)(3) == 8.0  # rank ceil(10.5) = 11 -> 8


def test_padding_is_ignored_and_non_finite_inside_is_located():
    scores, lengths = _random_set()
    garbage = scores.copy()
    garbage[np.isnan(garbage)] = 1e9
    assert fit_constant(garbage, lengths, 0.1) == fit_constant(scores, lengths, 0.1)
    bad = scores.copy()
    bad[2, 3] = np.inf
    with pytest.raises(ValueError, match=r"rollout 2 .* step 3"):
        fit_band(bad, lengths, 0.1)
    with pytest.raises(ValueError, match="empty"):
        fit_time_varying(np.zeros((0, 5)), None, 0.1)
    with pytest.raises(ValueError, match="length"):
        fit_constant(scores, lengths + 100, 0.1)


def test_published_band_matches_its_definition():
    scores, lengths = _random_set(seed=3)
    th = fit_band(scores, lengths, 0.1, d1_fraction=0.5, seed=7, ended="drop")
    d1, d2 = band_split(40, 0.5, 7)
    assert th.params["num_d1"] == d1.size == 20 and th.params["num_d2"] == d2.size == 20
    x = np.nan_to_num(scores)
    mask = step_mask(lengths, scores.shape[1])
    mu = band_center(x[d1], mask[d1])
    # mu by hand: mean over the D1 rollouts alive at each step
    for t in (0, 10, scores.shape[1] - 1):
        alive = d1[lengths[d1] > t]
        if alive.size:
            assert mu[t] == pytest.approx(np.mean(scores[alive, t]))
    s = band_modulation(x[d1], mask[d1], mu, 0.1)
    h = conformal_quantile(band_nonconformity(x[d2], mask[d2], mu, s), 0.1)
    np.testing.assert_allclose(th.values(scores.shape[1]), mu + h * s)
    assert th.params["height"] == pytest.approx(h)
    assert np.all(np.asarray(th.params["modulation"]) > 0)


def test_band_is_one_sided_upper_and_counts_d2_exceedances_exactly():
    """Exactly n2 - rank of the D2 rollouts cross gamma somewhere (a sign error breaks this)."""
    scores, lengths = _random_set(seed=5, num=60)
    th = fit_band(scores, lengths, 0.1, seed=1)
    _, d2 = band_split(60, 0.5, 1)
    gamma = th.values(scores.shape[1])
    crossed = np.nansum(scores[d2] > gamma, axis=1) > 0
    assert crossed.sum() == d2.size - int(np.ceil((d2.size + 1) * 0.9))  # 30 - 28 = 2
    shifted = fit_band(scores + 10.0, lengths, 0.1, seed=1)  # shifting all scores up shifts the band up
    np.testing.assert_allclose(shifted.values(40), th.values(40) + 10.0)


def test_band_split_is_seeded_and_configurable():
    a, b = band_split(10, 0.3, 4)
    assert a.size == 3 and b.size == 7 and set(a) | set(b) == set(range(10))
    np.testing.assert_array_equal(band_split(10, 0.3, 4)[0], a)
    assert not np.array_equal(band_split(50, 0.5, 1)[0], band_split(50, 0.5, 2)[0])
    with pytest.raises(ValueError, match="d1_fraction"):
        band_split(10, 1.0, 0)


def test_band_unattainable_names_the_total_needed():
    scores, lengths = _random_set(num=20)
    with pytest.raises(InsufficientCalibrationError) as info:
        fit_band(scores, lengths, 0.05, d1_fraction=0.5)
    msg = str(info.value)
    assert "M=10 D2 rollouts" in msg and "at least 37" in msg and "M=20" in msg


def test_time_varying_per_step_rank_among_alive_and_not_guaranteed():
    # 19 rollouts: 16 of length 2, 3 of length 4. delta = 0.5:
    # step 0, 1: 19 alive, rank ceil(20 * 0.5) = 10; step 2, 3: 3 alive, rank ceil(4 * 0.5) = 2.
    rows = [[float(i), 100.0 + i] for i in range(16)] + [[16.0, 116.0, 7.0, 1.0], [17.0, 117.0, 5.0, 3.0], [18.0, 118.0, 6.0, 2.0]]
    scores, lengths = pad_rollouts(rows)
    th = fit_time_varying(scores, lengths, 0.5)
    assert th.guaranteed is False and th.kind == "time_varying"
    np.testing.assert_array_equal(th.values(6), [9.0, 109.0, 6.0, 2.0, 2.0, 2.0])
    np.testing.assert_array_equal(th.params["num_alive"], [19, 19, 3, 3])
    with pytest.raises(InsufficientCalibrationError):
        fit_time_varying(scores[:5], lengths[:5], 0.1)


def test_extension_and_vectorised_evaluation():
    scores, lengths = _random_set()
    for kind in ("constant", "band", "time_varying"):
        th = fit_threshold(kind, scores, lengths, 0.1)
        last = th.curve[-1]
        assert th(th.horizon + 1000) == last
        steps = np.array([[0, 5], [th.horizon - 1, 10**6]])
        out = th(steps)
        assert out.shape == (2, 2) and out[1, 1] == last and out[0, 0] == th.curve[0]
        np.testing.assert_array_equal(th.values(th.horizon + 3)[-4:], [last] * 4)
        with pytest.raises(ValueError, match=">= 0"):
            th(-1)
        with pytest.raises(ValueError, match="whole"):
            th(1.5)
    assert fit_constant(scores, lengths, 0.1).horizon == 1
    assert fit_band(scores, lengths, 0.1).horizon == lengths.max()


def test_dispatch_and_grid():
    scores, lengths = _random_set()
    grid = fit_threshold_grid("constant", scores, lengths, [0.1, 0.05, 0.2])
    assert [t.delta for t in grid] == [0.1, 0.05, 0.2]
    assert grid[1](0) >= grid[0](0) >= grid[2](0)  # smaller delta, higher threshold
    with pytest.raises(ValueError, match="unknown threshold kind"):
        fit_threshold("median", scores, lengths, 0.1)
    with pytest.raises(ValueError, match="takes no options"):
        fit_threshold("constant", scores, lengths, 0.1, seed=3)
    with pytest.raises(ValueError, match="kind"):
        Threshold("nope", 0.1, [1.0], 10, True)
    with pytest.raises(ValueError, match="finite"):
        Threshold("constant", 0.1, [np.nan], 10, True)
