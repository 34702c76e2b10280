"""MonitorSpec: one validated definition, the same alarms online and offline, old files still load."""

import json
from pathlib import Path

import numpy as np
import pytest

from fiper.monitor import load_monitor
from fiper.monitor.monitor_file import read_monitor_file
from fiper.monitor.spec import MonitorSpec, ScoreSpec, fiper_spec, score_defaults

LEGACY = Path(__file__).parent / "fixtures" / "legacy_v1"


def test_spec_fills_score_defaults_and_round_trips():
    spec = MonitorSpec.of({"scores": {"ace": {"kappa": 0.05}, "m": {"score": "mahalanobis"}}, "rule": "or", "windows": {"ace": 3}})
    assert spec.scores["ace"].params["kappa"] == 0.05 and spec.scores["ace"].params["dims"] is None
    assert spec.windows == {"ace": 3, "m": 5} and spec.threshold_type == "constant" and spec.delta is None
    assert MonitorSpec.of(spec.as_dict()) == spec
    assert score_defaults("rnd_oe")["whiten"] is True  # the class's defaults are the one source
    assert fiper_spec().rule == "and" and fiper_spec().names == ("rnd_oe", "ace")


@pytest.mark.parametrize("bad, words", [
    ({"scores": {}}, "scores is empty"),
    ({"scores": {"x": {"score": "nope"}}}, "unknown score 'nope'"),
    ({"scores": {"ace": {"kapa": 1}}}, "unknown parameters ['kapa']"),
    ({"scores": {"ace": {"kappa": -1}}}, "kappa"),
    ({"scores": {"ace": {}, "knn": {}}, "rule": "single"}, "'single' takes exactly one"),
    ({"scores": {"ace": {}}, "windows": {"ace": 0}}, "whole number of decisions"),
    ({"scores": {"ace": {}}, "windows": {"knn": 3}}, "'~monitor.windows.knn'"),
    ({"scores": {"ace": {}}, "windows": [3]}, "map each score to its window"),
    ({"scores": {"ace": {}}, "threshold_type": "tight"}, "threshold type 'tight'"),
    ({"scores": {"ace": {}}, "joint": True}, "nothing to share"),
    ({"scores": {"ace": {}, "knn": {}}, "joint": True, "threshold_type": "time_varying"}, "not time_varying"),
    ({"scores": {"ace": {}}, "delta": 1.5}, "delta"),
    ({"scores": {"ace": {}}, "colour": "red"}, "unknown monitor settings ['colour']"),
    ({"format": "fiper-monitor", "monitor": {}, "evaluated": {}}, "read it with fiper.monitor.monitor_file.read_monitor_file"),
])
def test_spec_refuses_bad_settings_once_with_the_fix(bad, words):
    with pytest.raises(ValueError, match="monitor.yaml") as err:
        MonitorSpec.of(bad, source="monitor.yaml")
    assert words in str(err.value)


def test_one_window_number_is_every_scores_window():
    spec = MonitorSpec.of({"scores": {"ace": {}, "knn": {}}, "windows": 3})
    assert spec.windows == {"ace": 3, "knn": 3} and MonitorSpec.of(spec.as_dict()) == spec


def _legacy_inputs():
    d = np.load(LEGACY / "decisions.npz")
    return d["test_emb"], d["test_smp"], d["test_ends"]


def test_monitor_files_written_before_the_spec_give_the_same_alarms():
    expected = json.loads((LEGACY / "expected_first_alarms.json").read_text())
    emb, smp, ends = _legacy_inputs()
    assert len(expected) == 10
    for name, first in expected.items():
        monitor = load_monitor(LEGACY / name)
        trace = monitor.alarms_offline(monitor.score_offline(emb, smp, ends), ends)
        assert trace.first_alarm.tolist() == first, name
        assert monitor.spec.rule == name.split("_")[0]


def test_legacy_choice_file_reads_as_a_spec():
    choice = read_monitor_file(LEGACY / "monitor_choice_v1.yaml")
    spec = choice["spec"]
    assert isinstance(spec, MonitorSpec)
    assert (spec.rule, spec.threshold_type, spec.joint) == ("or", "band", True)
    assert spec.windows == {"rnd_oe": 2, "ace": 4} and spec.scores["ace"] == ScoreSpec("ace", {"kappa": 0.1, "dims": [0, 1]})
