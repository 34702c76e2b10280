"""A monitor.json written before the spec was saved keeps its threshold type and joint flag (read from its thresholds),
so launch.calibrate recalibrates it as it was calibrated."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fiper.monitor import load_monitor

LEGACY = Path(__file__).parents[1] / "monitor" / "fixtures" / "legacy_v1"
NAMES = ["and_band_joint", "and_band_sep", "and_constant_joint", "and_time_varying_sep", "or_band_joint", "or_constant_sep"]


@pytest.mark.parametrize("name", NAMES)
def test_a_file_without_a_spec_reads_its_threshold_type_and_joint_flag_from_its_thresholds(name):
    rule, *kind, pairing = name.split("_")
    monitor = load_monitor(LEGACY / name)
    assert (monitor.spec.rule, monitor.spec.threshold_type, monitor.spec.joint) == (rule, "_".join(kind), pairing == "joint")
    assert monitor.threshold_type == "_".join(kind) and monitor.joint is (pairing == "joint")


def test_recalibrating_a_file_without_a_spec_keeps_its_band_thresholds():
    d = np.load(LEGACY / "decisions.npz")
    emb, smp, ends = d["test_emb"], d["test_smp"], d["test_ends"]
    monitor = load_monitor(LEGACY / "and_band_joint")
    thresholds = monitor.calibrate(monitor.score_offline(emb, smp, ends), ends, delta=0.2)
    assert {t.kind for t in thresholds.values()} == {"band"} and all(t.params["joint"] for t in thresholds.values())
