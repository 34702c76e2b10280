"""Damaged monitor directories raise MonitorFileError naming the file, what is wrong and the fix."""

from __future__ import annotations

import json

import numpy as np
import pytest

from calibration import Threshold
from fiper.monitor import MonitorFileError, PolicyIdentity, load_monitor, save_monitor
from fiper.monitor.fitting import fit_monitor
from fiper.scores.base import ScoreFitData


@pytest.fixture
def saved(tmp_path):
    rng = np.random.default_rng(0)
    data = ScoreFitData(rng.normal(size=(30, 5)).astype(np.float32), rng.normal(size=(30, 4, 3, 2)).astype(np.float32), np.array([10, 20, 30]))
    monitor = fit_monitor(data, PolicyIdentity(5, 4, 3, 2), scores={"ace": {"score": "ace"}}, windows={"ace": 1}, rule="single")
    monitor.set_thresholds({"ace": Threshold("constant", 0.2, [1.0], 10, True)})
    return save_monitor(monitor, tmp_path / "monitor")


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_truncated_tensor_file(saved):
    _truncate(saved / "scores.safetensors")
    with pytest.raises(MonitorFileError, match=r"scores.safetensors: its bytes differ from the sha256 recorded in monitor.json.*Fix: re-create"):
        load_monitor(saved)
    config = json.loads((saved / "monitor.json").read_text())
    del config["tensors_sha256"]  # a file written before the sha256 was recorded
    (saved / "monitor.json").write_text(json.dumps(config))
    with pytest.raises(MonitorFileError, match=r"scores.safetensors: the score tensors do not load \(SafetensorError.*truncated.*Fix: re-create"):
        load_monitor(saved)


def test_changed_tensor_that_still_loads(saved):
    """safetensors keeps no checksum: a flipped bit in a value, or a tensor of another shape, loads without error."""
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(saved / "scores.safetensors"))
    name = next(iter(tensors))
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[0] += 1
    save_file(tensors, str(saved / "scores.safetensors"))
    with pytest.raises(MonitorFileError, match="its bytes differ from the sha256 recorded"):
        load_monitor(saved)


def test_truncated_or_garbled_json(saved):
    text = (saved / "monitor.json").read_text()
    (saved / "monitor.json").write_text(text[: len(text) // 2])
    with pytest.raises(MonitorFileError, match=r"monitor.json: not valid json .*truncated or garbled\. Fix: re-create"):
        load_monitor(saved)
    config = json.loads(text)
    del config["windows"]
    (saved / "monitor.json").write_text(json.dumps(config))
    with pytest.raises(MonitorFileError, match=r"monitor.json: missing or malformed entries \['windows'\]"):
        load_monitor(saved)


def test_damaged_threshold_entry(saved):
    config = json.loads((saved / "monitor.json").read_text())
    config["thresholds"]["ace"]["curve"] = "oops"
    (saved / "monitor.json").write_text(json.dumps(config))
    with pytest.raises(MonitorFileError, match=r"monitor.json: a threshold entry is damaged .*monitor.json:ace.*Fix: re-run `python -m launch.calibrate`"):
        load_monitor(saved)
    del config["thresholds"]["ace"]["delta"]
    (saved / "monitor.json").write_text(json.dumps(config))
    with pytest.raises(MonitorFileError, match=r"missing field\(s\) \['delta'\]"):
        load_monitor(saved)


def test_malformed_identity(saved):
    config = json.loads((saved / "monitor.json").read_text())
    config["identity"]["embedding_dim"] = "x"
    config["identity"]["bogus"] = 1
    (saved / "monitor.json").write_text(json.dumps(config))
    with pytest.raises(MonitorFileError, match="identity entry is malformed"):
        load_monitor(saved)
