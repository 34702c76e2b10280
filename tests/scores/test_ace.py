"""ACE: exact hand-computed entropies, sharp modes vs diffuse batches, bounds, velocity integration."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fiper.scores import ACE, ScoreFitData
from fiper.scores.ace import histogram_entropy_bits


def _fitted(calibration: np.ndarray, **kwargs) -> ACE:
    return ACE(**kwargs).fit(ScoreFitData(None, calibration, [len(calibration)]))


def test_hand_computed_example_matches_exactly():
    # Calibration: dim 0 spans [0, 10], dim 1 is constant (takes the largest range, 10), dim 2 (gripper) is ignored.
    cal = np.zeros((2, 4, 2, 3))
    cal[0, :, :, 0], cal[1, :, :, 0] = 0.0, 10.0
    cal[..., 1] = 7.0
    cal[..., 2] = np.random.default_rng(0).normal(size=(2, 4, 2)) * 100
    score = _fitted(cal, kappa=0.1, dims=[0, 1])
    np.testing.assert_array_equal(score.ranges.numpy(), [10.0, 10.0])  # cell width 1 in both dims
    batch = np.zeros((4, 2, 3))
    # step 0: origin = min - 1 % spread = (-0.032, -0.05); cells (0,0) (0,0) (3,0) (3,5) -> counts 2,1,1 -> 1.5 bits
    batch[:, 0, :2] = [[0.0, 0.0], [0.5, 0.2], [3.0, 0.0], [3.2, 5.0]]
    # step 1: four identical points -> one cell -> 0 bits
    batch[:, 1, :2] = [1.0, 1.0]
    batch[:, :, 2] = [[-50.0], [0.0], [30.0], [99.0]]
    assert score.step(None, torch.from_numpy(batch)) == 0.75
    assert score.score_offline(None, batch[None], [1])[0] == 0.75


def test_entropy_of_cell_ids_counts_joint_cells():
    cells = np.array([[[0, 0], [0, 1], [0, 0], [1, 0]], [[2, 2], [2, 2], [2, 2], [2, 2]], [[0, 0], [1, 1], [2, 2], [3, 3]]])
    np.testing.assert_array_equal(histogram_entropy_bits(cells), [1.5, 0.0, 2.0])


def test_two_sharp_modes_score_lower_than_a_diffuse_batch_of_the_same_spread():
    g = np.random.default_rng(0)
    b, h = 32, 4
    score = _fitted(g.uniform(0, 1, size=(10, b, h, 2)))  # ranges ~1 -> cell width ~0.03
    modes = np.where(np.arange(b)[:, None, None] < b // 2, 0.0, 1.0) + 1e-3 * g.normal(size=(b, h, 2))
    diffuse = g.uniform(0, 1, size=(b, h, 2))
    diffuse[0], diffuse[1] = 0.0, 1.0  # identical bounding box
    sharp, spread = score.step(None, modes), score.step(None, diffuse)
    assert sharp == pytest.approx(1.0, abs=0.05)
    assert spread > 4.0
    # the batch variance says the opposite: sharpness, not spread, is what ACE measures
    assert modes[..., 0].var(axis=0).mean() > diffuse[..., 0].var(axis=0).mean()


@pytest.mark.parametrize("b", [2, 7, 32, 64])
def test_bounds_hold_on_random_batches(b):
    g = np.random.default_rng(b)
    score = _fitted(g.normal(size=(5, b, 6, 3)), dims=[0, 1, 2])
    scales = np.array([0.0, 1e-6, 0.01, 1.0, 100.0, 1e4])[:, None, None, None, None]
    batches = (scales * g.normal(size=(1, 20, b, 6, 3))).reshape(-1, b, 6, 3)
    ace = score.score_offline(None, batches, [len(batches)])
    assert np.all(ace >= 0) and np.all(ace <= np.log2(b) + 1e-12)
    assert np.all(ace[:20] == 0)  # identical samples: one cell
    np.testing.assert_allclose(ace[-20:], np.log2(b))  # samples far apart: every sample its own cell
    assert score.max_entropy == np.log2(b)


def test_velocities_are_integrated_over_the_horizon():
    g = np.random.default_rng(1)
    vel = g.normal(size=(6, 16, 8, 2))
    integrated = _fitted(vel, integrate=True)
    on_positions = _fitted(np.cumsum(vel, axis=2))
    np.testing.assert_array_equal(integrated.ranges.numpy(), on_positions.ranges.numpy())
    new = g.normal(size=(4, 16, 8, 2))
    np.testing.assert_array_equal(integrated.score_offline(None, new, [4]), on_positions.score_offline(None, np.cumsum(new, axis=2), [4]))
    assert not np.array_equal(integrated.score_offline(None, new, [4]), _fitted(vel).score_offline(None, new, [4]))


def test_kappa_changes_the_scale():
    g = np.random.default_rng(2)
    cal, new = g.normal(size=(5, 32, 4, 2)), g.normal(size=(8, 32, 4, 2))
    fine, coarse = _fitted(cal, kappa=0.01), _fitted(cal, kappa=0.3)
    assert np.all(fine.score_offline(None, new, [8]) > coarse.score_offline(None, new, [8]))


def test_fit_refuses_bad_calibration_data():
    with pytest.raises(ValueError, match="beyond the action size A=2"):
        _fitted(np.ones((3, 4, 2, 2)), dims=[0, 2])
    with pytest.raises(ValueError, match="constant"):
        _fitted(np.ones((3, 4, 2, 2)))


def test_batch_size_is_part_of_the_fitted_score():
    score = _fitted(np.random.default_rng(3).normal(size=(3, 8, 4, 2)))
    with pytest.raises(ValueError, match=r"\(16, 4, 2\).*\(8, 4, 2\)"):
        score.step(None, np.zeros((16, 4, 2)))


def test_packed_and_lexicographic_cell_counting_agree():
    g = np.random.default_rng(4)
    small = g.integers(0, 4, size=(50, 16, 3))
    huge = small * (1 << 40)  # 3 x 42-bit ids do not fit one exact float64 key: the lexicographic path runs
    np.testing.assert_array_equal(histogram_entropy_bits(small), histogram_entropy_bits(huge))
    shifted = small - 7  # negative ids are fine
    np.testing.assert_array_equal(histogram_entropy_bits(small), histogram_entropy_bits(shifted))
    brute = [-sum((c / 16) * np.log2(c / 16) for c in np.unique(row, axis=0, return_counts=True)[1]) for row in small]
    np.testing.assert_allclose(histogram_entropy_bits(small), brute, rtol=1e-12)
