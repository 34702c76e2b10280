"""conformal_quantile: the finite-sample corrected rank, grids, batches and input errors."""

from __future__ import annotations

import numpy as np
import pytest

from calibration import InsufficientCalibrationError, conformal_quantile, conformal_rank, min_calibration_size


def test_rank_is_ceil_m_plus_one_times_one_minus_delta():
    values = np.random.default_rng(0).permutation(np.arange(1.0, 11.0))  # 1..10 shuffled
    assert conformal_quantile(values, 0.1) == 10.0  # ceil(11 * 0.9) = 10
    assert conformal_quantile(values, 0.2) == 9.0  # ceil(8.8) = 9
    assert conformal_quantile(values, 0.5) == 6.0  # ceil(5.5) = 6
    np.testing.assert_array_equal(conformal_quantile(values, [0.1, 0.2, 0.5]), [10.0, 9.0, 6.0])


def test_float_products_do_not_shift_the_rank():
    # (M+1)(1-delta) is an exact integer here; float error must not round it up.
    assert conformal_rank(9, 0.1) == 9
    assert conformal_rank(19, 0.05) == 19
    assert conformal_rank(89, 0.3) == 63
    assert conformal_rank(99, 0.01) == 99


def test_batched_along_axis():
    rng = np.random.default_rng(1)
    values = rng.standard_normal((3, 4, 20))
    out = conformal_quantile(values, 0.1, axis=-1)  # rank ceil(21 * 0.9) = 19
    np.testing.assert_array_equal(out, np.sort(values, axis=-1)[..., 18])
    np.testing.assert_array_equal(conformal_quantile(np.moveaxis(values, -1, 0), 0.1, axis=0), out)
    grid = conformal_quantile(values, np.array([0.1, 0.5]))
    assert grid.shape == (2, 3, 4)
    np.testing.assert_array_equal(grid[1], np.sort(values, axis=-1)[..., 10])  # ceil(10.5) = 11


@pytest.mark.parametrize(("delta", "need"), [(0.1, 9), (0.05, 19), (0.01, 99), (0.2, 4), (0.3, 3), (0.5, 1)])
def test_min_calibration_size(delta, need):
    assert min_calibration_size(delta) == need
    values = np.arange(float(need))
    assert conformal_quantile(values, delta) == values.max()  # attainable: the largest value
    if need > 1:
        with pytest.raises(InsufficientCalibrationError):
            conformal_quantile(values[:-1], delta)


def test_unattainable_level_names_m_delta_and_minimum():
    with pytest.raises(InsufficientCalibrationError) as info:
        conformal_quantile(np.arange(5.0), 0.1)
    msg = str(info.value)
    assert "M=5" in msg and "delta=0.1" in msg and "at least 9" in msg
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("delta", [0.0, 1.0, -0.1, 1.5, float("nan"), "a"])
def test_delta_outside_unit_interval(delta):
    with pytest.raises(ValueError, match="delta"):
        conformal_quantile(np.arange(50.0), delta)


def test_empty_and_non_finite_values():
    with pytest.raises(ValueError, match="at least one"):
        conformal_quantile(np.array([]), 0.1)
    with pytest.raises(ValueError, match="finite"):
        conformal_quantile(np.array([1.0, np.nan] + [0.0] * 20), 0.1)
