"""The episode split: disjoint parts, fit/calibration from ID successes only, stratified validation/test."""

from __future__ import annotations

import numpy as np
import pytest

from calibration import InsufficientCalibrationError
from fiper.evaluation import split_episodes
from fiper.evaluation.splits import check_calibration_size, required_calibration


@pytest.mark.parametrize("seed", range(20))
def test_parts_are_disjoint_and_test_never_fits_or_calibrates(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(30, 200))
    success = rng.random(n) < rng.uniform(0.3, 0.9)
    ood = rng.random(n) < rng.uniform(0.0, 0.6)
    success[:3], ood[:3] = True, False  # at least a few ID successes
    fit, cal, val = rng.uniform(0.1, 0.5), rng.uniform(0.1, 0.45), rng.uniform(0.2, 0.8)
    split = split_episodes(success, ood, fit=fit, calibration=cal, validation=val, seed=seed)
    parts = [split.fit, split.calibration, split.validation, split.test]
    joined = np.concatenate(parts)
    assert np.array_equal(np.sort(joined), np.arange(n))  # every episode in exactly one part
    id_success = np.flatnonzero(success & ~ood)
    assert np.isin(split.fit, id_success).all() and np.isin(split.calibration, id_success).all()
    assert not np.intersect1d(split.test, np.concatenate([split.fit, split.calibration])).size
    n_id = id_success.size
    assert split.fit.size == int(np.floor(fit * n_id + 0.5))
    # each stratum is divided between validation and test by the validation fraction (rounded)
    sizes = split.sizes(success, ood)
    for stratum in ("success_ood", "fail_id", "fail_ood"):
        total = sizes["validation"][stratum] + sizes["test"][stratum]
        assert sizes["validation"][stratum] == int(np.floor(val * total + 0.5))


def test_split_is_seeded_and_strata_are_independent():
    success = np.array([True] * 40 + [False] * 20)
    ood = np.array([False] * 30 + [True] * 10 + [False] * 10 + [True] * 10)
    a = split_episodes(success, ood, seed=3)
    b = split_episodes(success, ood, seed=3)
    c = split_episodes(success, ood, seed=4)
    assert all(np.array_equal(a.part(p), b.part(p)) for p in ("fit", "calibration", "validation", "test"))
    assert not np.array_equal(a.fit, c.fit)
    # adding failures does not move any ID success between parts
    more = split_episodes(np.r_[success, [False] * 7], np.r_[ood, [False] * 7], seed=3)
    for p in ("fit", "calibration"):
        assert np.array_equal(a.part(p), more.part(p))


def test_too_few_id_successes_name_the_minimum():
    success, ood = np.ones(50, bool), np.zeros(50, bool)
    split = split_episodes(success, ood, fit=0.4, calibration=0.4, seed=0)  # 20 calibration episodes
    assert required_calibration(["constant"], [0.05], 0.5) == (19, "constant", 0.05)
    check_calibration_size("t", 50, split, ["constant"], [0.05, 0.1], calibration=0.4, d1_fraction=0.5)  # fine
    with pytest.raises(InsufficientCalibrationError, match=r"'band' at delta=0.05 needs at least 37 calibration episodes.*at least 92 successful"):
        check_calibration_size("t", 50, split, ["constant", "band"], [0.05, 0.1], calibration=0.4, d1_fraction=0.5)
    with pytest.raises(InsufficientCalibrationError, match=r"With 20 the grid attains deltas=\[0.1,0.2\] \(launch.pipeline: "
                                                          r"evaluate.deltas=\[0.1,0.2\]\)"):
        check_calibration_size("t", 50, split, ["constant", "band"], [0.05, 0.1, 0.2], calibration=0.4, d1_fraction=0.5)
    with pytest.raises(InsufficientCalibrationError, match="no episodes to fit"):
        split_episodes(np.zeros(10, bool), ood[:10])


def test_a_grid_with_no_attainable_delta_names_the_smallest_delta_the_calibration_split_attains():
    """A first small run (13 calibration episodes) attains none of the default grid (0.01 ..): the message names the
    smallest delta it does attain, as a setting, so the path can be tried before more rollouts are recorded."""
    success, ood = np.ones(33, bool), np.zeros(33, bool)
    split = split_episodes(success, ood, fit=0.3, calibration=0.4, seed=0)  # 13 calibration episodes
    have = split.calibration.size
    need = {d: required_calibration(["constant"], [d], 0.5, joint=True)[0] for d in (0.01, 0.05, 0.1, 0.2)}
    smallest = min(d / 100 for d in range(1, 51) if required_calibration(["constant"], [d / 100], 0.5, joint=True)[0] <= have)
    assert need[0.1] > have >= required_calibration(["constant"], [smallest], 0.5, joint=True)[0]
    with pytest.raises(InsufficientCalibrationError, match=rf"With {have} no delta of the grid is attainable; the smallest that is, "
                                                          rf"to try the path: deltas=\[{smallest:g}\] \(launch.pipeline: "
                                                          rf"evaluate.deltas=\[{smallest:g}\]\)"):
        check_calibration_size("t", 33, split, ["constant"], [0.01, 0.05, 0.1], calibration=0.4, d1_fraction=0.5, joint=True)
    with pytest.raises(InsufficientCalibrationError, match=r"With 0 no delta of the grid is attainable; none up to 0.5 either"):
        check_calibration_size("t", 3, split_episodes(np.ones(3, bool), np.zeros(3, bool), fit=0.9, calibration=0.1),
                               ["constant"], [0.1], calibration=0.1, d1_fraction=0.5)
