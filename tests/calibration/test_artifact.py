"""Threshold json artifacts: exact round trip and clear errors for bad files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from calibration import ThresholdFileError, fit_threshold, load_threshold, save_threshold, threshold_to_dict


@pytest.fixture
def scores():
    rng = np.random.default_rng(0)
    x = rng.gamma(2.0, size=(30, 25)).cumsum(axis=1) / 7.0
    lengths = rng.integers(10, 26, 30)
    return x, lengths


@pytest.mark.parametrize("kind", ["constant", "band", "time_varying"])
def test_round_trip_is_identical(tmp_path, scores, kind):
    th = fit_threshold(kind, *scores, 0.1)
    path = save_threshold(th, tmp_path / "sub" / f"{kind}.json")
    back = load_threshold(path)
    assert back == th
    assert back.curve.tobytes() == th.curve.tobytes()  # bit-identical floats
    assert (back.kind, back.delta, back.num_calibration, back.guaranteed) == (kind, 0.1, 30, kind != "time_varying")
    data = json.loads(path.read_text())
    assert data["format"] == "fiper-threshold" and data["version"] == 1
    assert isinstance(data["curve"], list)


def test_bad_files(tmp_path, scores):
    good = threshold_to_dict(fit_threshold("band", *scores, 0.1))
    with pytest.raises(ThresholdFileError, match="does not exist"):
        load_threshold(tmp_path / "missing.json")
    (tmp_path / "trunc.json").write_text(json.dumps(good)[:50])
    with pytest.raises(ThresholdFileError, match="not valid json"):
        load_threshold(tmp_path / "trunc.json")
    cases = {
        "foreign": ({"hello": 1}, "not a fiper threshold"),
        "version": ({**good, "version": 99}, "version 99"),
        "missing": ({k: v for k, v in good.items() if k != "curve"}, "missing field"),
        "kind": ({**good, "kind": "weird"}, "unknown threshold kind"),
        "empty": ({**good, "curve": []}, "invalid threshold"),
        "delta": ({**good, "delta": 2.0}, "invalid threshold"),
    }
    for name, (data, message) in cases.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(data))
        with pytest.raises(ThresholdFileError, match=message):
            load_threshold(tmp_path / f"{name}.json")
