"""Calibrating on the episodes a monitor was fitted on is refused (the conformal guarantee needs
independent calibration data), or with allow_overlap=true gives thresholds marked guaranteed=False."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from fiper.monitor import load_monitor
from fiper.storage import EpisodeStore
from launch import calibrate, fit

CONF = Path(__file__).resolve().parents[2] / "launch" / "conf"
B, H, A, D = 4, 4, 2, 6
SMALL = ["monitor.scores.rnd_oe.target_widths=[8]", "monitor.scores.rnd_oe.predictor_widths=[16]",
         "monitor.scores.rnd_oe.out_dim=4", "monitor.scores.rnd_oe.train={max_epochs: 2, lr: 0.003}",
         "monitor.scores.ace.dims=[0,1]", "monitor.windows={rnd_oe: 2, ace: 2}"]


def _rollouts(path: Path, n: int, first_seed: int | None, rng_seed: int) -> Path:
    rng = np.random.default_rng(rng_seed)
    store = EpisodeStore.create(path, attrs={"n_action_steps": 2})
    for e in range(n):
        t, k = 12, 6
        store.append_episode({"action": rng.normal(size=(t, A)).astype(np.float32)},
                             decisions={"embedding": rng.normal(size=(k, D)).astype(np.float32),
                                        "samples": rng.normal(size=(k, B, H, A)).astype(np.float32)},
                             meta={"success": True, "shift": "none"} | ({} if first_seed is None else {"seed": first_seed + e}))
    return path


def _run(module, name, overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        return module.run(compose(config_name=name, overrides=overrides))


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("guard")
    fit_store = _rollouts(tmp / "fit.zarr", 20, first_seed=0, rng_seed=0)
    out = tmp / "monitor"
    _run(fit, "fit", [f"data={fit_store}", f"out={out}", *SMALL])
    return tmp, fit_store, out


def test_fit_records_its_episodes(fitted):
    _, fit_store, out = fitted
    record = json.loads((out / "monitor.json").read_text())["fit_data"]
    assert record["store"] == str(fit_store.resolve()) and record["store_id"] == EpisodeStore.open(fit_store).attrs["store_id"]
    assert record["episodes"] == list(range(20)) and record["seeds"] == list(range(20))
    assert len(set(record["digests"])) == 20 and all(len(d) == 16 for d in record["digests"])


def test_same_store_is_refused_and_override_drops_the_guarantee(fitted):
    _, fit_store, out = fitted
    with pytest.raises(ValueError, match=r"calibration refused: 20 of its 20 calibration episodes of .*fit.zarr were fitted on.*"
                                         r"independent.*seeds.start=.*allow_overlap=true"):
        _run(calibrate, "calibrate", [f"data={fit_store}", f"monitor_dir={out}", "delta=0.2"])
    assert not load_monitor(out).calibrated  # nothing written
    _run(calibrate, "calibrate", [f"data={fit_store}", f"monitor_dir={out}", "delta=0.2", "allow_overlap=true"])
    loaded = load_monitor(out)
    assert loaded.calibrated and all(not t.guaranteed for t in loaded.thresholds.values())
    assert all("were fitted on" in t.params["not_guaranteed"] for t in loaded.thresholds.values())
    assert loaded.fit_data["episodes"] == list(range(20))  # re-saving keeps the fit record


def test_shared_seeds_in_another_store_are_refused(fitted):
    tmp, _, out = fitted
    rerun = _rollouts(tmp / "rerun.zarr", 20, first_seed=10, rng_seed=5)  # seeds 10..29: half were fitted on
    with pytest.raises(ValueError, match=r"10 calibration episodes of .*rerun.zarr share their seed with a fit episode.*seeds \[10, 11"):
        _run(calibrate, "calibrate", [f"data={rerun}", f"monitor_dir={out}", "delta=0.2"])


def test_the_fit_rollouts_recorded_again_without_seeds_are_refused(fitted):
    """A deterministic scene replayed with the same sampling seed records the same episodes: no seed labels, same decisions."""
    tmp, _, out = fitted
    replay = _rollouts(tmp / "replay.zarr", 20, first_seed=None, rng_seed=0)  # the fit's 20 episodes, unlabelled
    with pytest.raises(ValueError, match=r"calibration refused: 20 calibration episodes of .*replay.zarr repeat a fit episode of "
                                         r".*fit.zarr decision for decision \(episodes \[0, 1, 2, 3, 4\]"):
        _run(calibrate, "calibrate", [f"data={replay}", f"monitor_dir={out}", "delta=0.2"])


def test_disjoint_seeds_calibrate_with_the_guarantee(fitted):
    tmp, _, out = fitted
    fresh = _rollouts(tmp / "fresh.zarr", 20, first_seed=1000, rng_seed=7)
    _run(calibrate, "calibrate", [f"data={fresh}", f"monitor_dir={out}", "delta=0.2", "threshold_type=constant"])
    loaded = load_monitor(out)
    assert all(t.guaranteed and "not_guaranteed" not in t.params for t in loaded.thresholds.values())
