"""ACE's compiled (numba) entropy kernel against the numpy path: same cells, same entropies to 1e-12."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from fiper.scores import ACE, ScoreFitData, histogram_kernel
from fiper.scores.histogram import entropy_terms

pytestmark = pytest.mark.skipif(not histogram_kernel.AVAILABLE, reason="numba is not importable: ACE runs its numpy path")


def _pair(calibration: np.ndarray, **kwargs) -> tuple[ACE, ACE]:
    """The same fitted ACE twice: compiled kernel and numpy path."""
    compiled = ACE(**kwargs).fit(ScoreFitData(None, calibration, [len(calibration)]))
    numpy_path = copy.deepcopy(compiled)
    compiled.compiled, numpy_path.compiled = True, False
    return compiled, numpy_path


def _batches(g: np.random.Generator, n: int, b: int, h: int, a: int) -> np.ndarray:
    """Decisions mixing every kind of set: diffuse, two sharp modes, identical points (one cell), points
    on a coarse lattice (many exact ties, values on cell edges), one far outlier (a huge grid)."""
    kind = np.arange(n) % 5
    x = g.normal(size=(n, b, h, a))
    x[kind == 1] = np.where(g.random(size=(int((kind == 1).sum()), b, 1, 1)) < 0.5, -1.0, 1.0) + 1e-3 * x[kind == 1]
    x[kind == 2] = x[kind == 2][:, :1]
    x[kind == 3] = np.round(x[kind == 3] * 4) / 4
    x[kind == 4, 0] *= 1e6
    return x


@pytest.mark.parametrize("b", [1, 32, 256])
@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("integrate", [False, True])
def test_kernel_matches_numpy_path(b, d, integrate):
    g = np.random.default_rng(100 * b + 10 * d + integrate)
    h, a = 5, 4
    compiled, numpy_path = _pair(g.normal(size=(6, b, h, a)), dims=list(range(d)) if d < 3 else [3, 0, 2], integrate=integrate)
    x = _batches(g, 40, b, h, a)
    expected = numpy_path.score_offline(None, x, [len(x)])
    for dtype in (np.float64, np.float32):
        xs = x.astype(dtype)
        want = expected if dtype == np.float64 else numpy_path.score_offline(None, xs, [len(xs)])
        np.testing.assert_allclose(compiled.score_offline(None, xs, [len(xs)]), want, rtol=0, atol=1e-12)
    if b > 1:
        assert np.ptp(expected) > 0  # not vacuous


@pytest.mark.parametrize("b", [1, 32, 256])
def test_dense_and_hash_counting_agree(b):
    g = np.random.default_rng(b)
    x = _batches(g, 30, b, 4, 3)
    args = (np.arange(3), False, np.array([0.05, 0.1, 0.2]), 0.01, entropy_terms(b))
    dense = histogram_kernel.store_entropy(x, *args)
    hashed = histogram_kernel.store_entropy(x, *args, dense_cap=0)
    np.testing.assert_allclose(hashed, dense, rtol=0, atol=1e-12)


def test_huge_cell_ids_are_counted_exactly():
    # ids beyond int64 (a spread of 1e300 cell widths): the hash clamps them, equality stays exact
    g = np.random.default_rng(7)
    x = np.round(g.normal(size=(6, 16, 3, 2)) * 2) / 2
    x[:, 0] = 1e300
    compiled, numpy_path = _pair(g.normal(size=(4, 16, 3, 2)))
    np.testing.assert_allclose(compiled.score_offline(None, x, [6]), numpy_path.score_offline(None, x, [6]), rtol=0, atol=1e-12)


def test_parallel_serial_and_online_are_bit_identical():
    g = np.random.default_rng(3)
    compiled, _ = _pair(g.normal(size=(5, 32, 8, 2)))
    x = _batches(g, 64, 32, 8, 2).astype(np.float32)
    offline = compiled.score_offline(None, x, [len(x)])
    args = (compiled._dims, False, compiled._width, 0.01, entropy_terms(32))
    np.testing.assert_array_equal(histogram_kernel.store_entropy(x, *args, parallel=True), offline)  # opt-in prange
    online = [compiled.step(None, torch.from_numpy(xi)) for xi in x]
    np.testing.assert_array_equal(online, offline)
    strided = np.stack([x, -x], axis=-1)[..., 0]
    assert not strided.flags.c_contiguous
    np.testing.assert_array_equal(compiled.score_offline(None, strided, [len(x)]), offline)


def test_hand_computed_example_on_the_kernel():
    cal = np.zeros((2, 4, 2, 2))
    cal[1, :, :, 0] = 10.0
    compiled, _ = _pair(cal, kappa=0.1)
    assert compiled.compiled
    batch = np.zeros((4, 2, 2))
    batch[:, 0] = [[0.0, 0.0], [0.5, 0.2], [3.0, 0.0], [3.2, 5.0]]  # counts 2, 1, 1 -> 1.5 bits
    batch[:, 1] = 1.0  # one cell -> 0 bits
    assert compiled.step(None, batch) == 0.75
