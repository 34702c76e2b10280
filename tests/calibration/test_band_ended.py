"""The band's D1 rollouts that ended hold their last value: definition, guarantee and power on
short, variable-length rollouts (the demo's calibration lengths, 5-12 decisions)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.band_power import batched_band, short_rollouts, simulate
from calibration import band_nonconformity, band_split, conformal_quantile, fit_band, fit_joint, load_threshold, save_threshold
from calibration.rollouts import step_mask

DRAWS = 3000


def test_held_band_matches_its_definition():
    """mu(t) is the mean over every D1 rollout of its value at t, or its last value once it has ended."""
    eta, lengths = short_rollouts(np.random.default_rng(3), (40,))
    th = fit_band(eta, lengths, 0.1, seed=7)
    d1, d2 = band_split(40, 0.5, 7)
    width = int(lengths.max())
    held = np.stack([np.r_[eta[i, : lengths[i]], np.full(width - lengths[i], eta[i, lengths[i] - 1])] for i in d1])
    mu = held.mean(axis=0)
    np.testing.assert_allclose(th.params["mean"], mu, rtol=1e-12)
    dev = np.abs(held - mu)
    k = int(np.ceil((d1.size + 1) * 0.9 - 1e-9))
    kept = dev.max(axis=1) <= np.sort(dev.max(axis=1))[k - 1]
    s = np.maximum(dev[kept].max(axis=0), 1e-3 * dev[kept].max())
    np.testing.assert_allclose(th.params["modulation"], s, rtol=1e-12)
    mask = step_mask(lengths[d2], width)
    h = conformal_quantile(band_nonconformity(eta[d2, :width], mask, mu, s), 0.1)  # D2: its own steps only
    assert th.params["height"] == pytest.approx(float(h))
    np.testing.assert_allclose(th.values(width), mu + h * s, rtol=1e-12)
    assert th.params["ended"] == "hold"


def test_batched_simulation_is_fit_band():
    """The simulation's batched construction (D1 = the first half) gives fit_band's curve and height."""
    eta, lengths = short_rollouts(np.random.default_rng(5), (40,))
    d1, d2 = band_split(40, 0.5, 0)
    order = np.r_[d1, d2]
    for ended in ("hold", "drop"):
        th = fit_band(eta, lengths, 0.1, d1_fraction=0.5, seed=0, ended=ended)
        gamma, h = batched_band(eta[order], step_mask(lengths[order], eta.shape[1]), 0.1, ended)
        np.testing.assert_allclose(gamma[: th.horizon], th.values(th.horizon), rtol=1e-12)
        assert float(h) == pytest.approx(th.params["height"])


@pytest.mark.parametrize("delta", [0.05, 0.1])
def test_held_band_keeps_the_guarantee_on_short_variable_rollouts(delta):
    """Many calibration/test draws: false-alarm rate <= delta + 3 SE, and tight (>= delta - 1/(n2+1) - 3 SE)."""
    r = simulate(DRAWS, delta, "hold", seed=11)
    assert r["false_alarm"] <= delta + 3 * r["se"], r
    assert r["false_alarm"] >= delta - 1 / 21 - 3 * r["se"], r


def test_held_band_is_not_vacuous_where_the_published_one_is():
    """Dropping ended D1 rollouts leaves one running at the last decisions: s collapses, h explodes."""
    held, dropped = simulate(DRAWS, 0.05, "hold", seed=2), simulate(DRAWS, 0.05, "drop", seed=2)
    assert dropped["height_p99"] > 100 and held["height_p99"] < 10, (held, dropped)
    assert dropped["vacuous"] > 0.02 and held["vacuous"] < 0.002, (held, dropped)
    assert held["detection"] > dropped["detection"] + 0.03, (held, dropped)


def test_single_running_d1_rollout_no_longer_sets_the_height():
    """Constructed: 19 of the 20 D1 rollouts end at decision 8, one runs to 12, and so does D2."""
    d1, d2 = band_split(40, 0.5, 0)
    lengths = np.empty(40, dtype=np.int64)
    lengths[d1], lengths[d2] = np.r_[np.full(19, 8), 12], 12
    noise = 0.1 * np.random.default_rng(0).standard_normal((40, 12))
    eta = np.where(step_mask(lengths, 12), 1.0 + noise, np.nan)
    dropped = fit_band(eta, lengths, 0.1, ended="drop")
    held = fit_band(eta, lengths, 0.1, ended="hold")
    assert dropped.params["height"] > 50 and dropped.values(12).max() > 5  # s(8..11) = 0, floored
    assert held.params["height"] < 3 and held.values(12).max() < 1.5


def test_joint_band_holds_ended_rollouts_and_options_are_checked(tmp_path):
    eta, lengths = short_rollouts(np.random.default_rng(9), (40,))
    joint = fit_joint("band", {"a": eta, "b": 2 * eta}, lengths, 0.1)
    assert joint["a"].params["ended"] == "hold"
    alone = fit_band(eta, lengths, 0.1)
    np.testing.assert_allclose(joint["a"].params["mean"], alone.params["mean"])
    save_threshold(alone, tmp_path / "band.json")
    assert load_threshold(tmp_path / "band.json").params["ended"] == "hold"
    with pytest.raises(ValueError, match="ended must be one of"):
        fit_band(eta, lengths, 0.1, ended="keep")
    with pytest.raises(ValueError, match="ended must be one of"):
        fit_joint("band", {"a": eta, "b": eta}, lengths, 0.1, ended="keep")
