"""Scores defined outside fiper: named by their import path '<module>:<Class>', they fit, save and load
in a process that never imported them, through the library and the launchers; a ScoreBase score of the
raw observation gets it at fit, offline and online."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch

from fiper.monitor import FailureMonitor, load_monitor, save_monitor
from fiper.monitor.artifact import MonitorFileError
from fiper.monitor.fitting import fit_monitor
from fiper.monitor.identity import PolicyIdentity
from fiper.monitor.spec import MonitorSpec, ScoreSpec
from fiper.scores import SCORES, ScoreBase, ScoreFitData, make_score, register_score, score_class
from score_helpers import Decisions

PLUGIN = '''
import numpy as np
import torch
from fiper.scores import ScoreBase


class EmbeddingDistance(ScoreBase):
    """Distance of the embedding to the fit mean, in units of the fit's median distance."""

    name = "{name}"
    needs = frozenset({{"embedding"}})
    dtype = torch.float64
    backend = "numpy"

    def __init__(self, power: float = 1.0):
        super().__init__(power=float(power))
        self.mean = self.unit = None

    def _fit(self, embeddings, samples, decision_ends, seed):
        self.mean = embeddings.mean(0)
        self.unit = np.median(np.linalg.norm(embeddings - self.mean, axis=1)).reshape(1)

    def _score(self, embeddings, samples):
        return (np.linalg.norm(embeddings - self.mean, axis=1) / self.unit) ** self._config["power"]

    def _tensors(self):
        return {{"mean": torch.as_tensor(self.mean), "unit": torch.as_tensor(self.unit)}}

    def _load_tensors(self, tensors):
        self.mean, self.unit = (t.cpu().numpy() for t in self._take(tensors, "mean", "unit"))
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """A module of one user score on sys.path, not imported yet: (module name, score name, import path)."""
    module, name = f"user_scores_{uuid.uuid4().hex[:8]}", f"user_distance_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(PLUGIN.format(name=name)))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield module, name, f"{module}:EmbeddingDistance"
    SCORES.pop(name, None)
    sys.modules.pop(module, None)


def forget(module: str, name: str) -> None:
    """As in a new process: the module is not imported and its score not registered."""
    SCORES.pop(name, None)
    sys.modules.pop(module, None)


def identity(data: Decisions) -> PolicyIdentity:
    return PolicyIdentity(embedding_dim=data.embeddings.shape[1], num_samples=data.samples.shape[1],
                          horizon=data.samples.shape[2], action_dim=data.samples.shape[3], n_action_steps=2)


def test_import_path_builds_the_score_and_configs_keep_the_path(plugin):
    module, name, path = plugin
    spec = ScoreSpec.of({"score": path, "power": 2})
    assert spec.score == path and spec.params == {"power": 2.0}
    assert score_class(path).name == name and name in SCORES
    assert ScoreSpec.of({"score": name}).score == path  # registered by name in this process: saved by its path
    data = Decisions(seed=0)
    score = make_score(path).fit(ScoreFitData(data.embeddings, None, data.decision_ends))
    assert score.score_offline(data.embeddings, None, data.decision_ends).shape == (len(data.embeddings),)


def test_a_score_of_a_script_run_as_main_is_named_by_its_registry_name():
    """A class defined in a script run as ``__main__`` has no import path another process could follow: configs name
    it by the name the script registers, and a monitor built from them finds it."""
    name = f"main_distance_{uuid.uuid4().hex[:8]}"
    namespace = {"__name__": "__main__"}
    exec(textwrap.dedent(PLUGIN.format(name=name)), namespace)
    cls = register_score(namespace["EmbeddingDistance"])
    try:
        assert cls.__module__ == "__main__" and ScoreSpec.of({"score": name}).score == name
        assert score_class("__main__:EmbeddingDistance") is cls  # its path, resolved by the registry, not by importing
        data = Decisions(seed=0)
        monitor = FailureMonitor.from_spec(MonitorSpec.of({"scores": {"d": {"score": name}}}),
                                           ScoreFitData(data.embeddings, data.samples, data.decision_ends), identity(data))
        assert monitor.spec.scores["d"].score == name
    finally:
        SCORES.pop(name, None)


def test_saved_monitor_loads_in_a_process_that_never_imported_the_score(plugin, tmp_path):
    module, name, path = plugin
    data, cal = Decisions(seed=0, lengths=(6,) * 12), Decisions(seed=1, lengths=(6,) * 20)
    monitor = fit_monitor(data.fit_data(), identity(data), scores={"mine": {"score": path}, "ace": {"dims": [0, 1]}},
                          windows={"mine": 2, "ace": 2}, rule="or")
    raw = monitor.score_offline(cal.embeddings, cal.samples, cal.decision_ends)
    monitor.calibrate(raw, cal.decision_ends, delta=0.1, threshold_type="constant")
    save_monitor(monitor, tmp_path / "monitor")
    forget(module, name)
    loaded = load_monitor(tmp_path / "monitor")
    assert loaded.spec.scores["mine"].score == path
    np.testing.assert_array_equal(loaded.score_offline(cal.embeddings, cal.samples, cal.decision_ends)["mine"], raw["mine"])
    assert MonitorSpec.of(loaded.spec.as_dict()).scores["mine"].score == path
    forget(module, name)
    sys.path.remove(str(tmp_path))  # the module is no longer importable: the files are fine, the error says so
    with pytest.raises(MonitorFileError, match=r"cannot find .*does not import.*Fix: make the module that defines it importable"):
        load_monitor(tmp_path / "monitor")


def test_a_score_of_ones_own_that_refuses_its_saved_state_names_its_class_as_the_fix(plugin, tmp_path):
    module, name, path = plugin
    data, cal = Decisions(seed=0, lengths=(6,) * 12), Decisions(seed=1, lengths=(6,) * 20)
    monitor = fit_monitor(data.fit_data(), identity(data), scores={"mine": {"score": path}}, windows={"mine": 2}, rule="single")
    monitor.calibrate(monitor.score_offline(cal.embeddings, cal.samples, cal.decision_ends), cal.decision_ends, delta=0.1)
    save_monitor(monitor, tmp_path / "monitor")
    forget(module, name)
    source = tmp_path / f"{module}.py"  # its next version refuses what the saved one wrote
    source.write_text(source.read_text().replace('self._take(tensors, "mean", "unit")', 'self._take(tensors, "centre", "unit")'))
    with pytest.raises(MonitorFileError, match=rf"score 'mine' does not load.*Fix: fix the score class {module}:EmbeddingDistance "
                                               r"where its from_state or __init__ refuses the saved state"):
        load_monitor(tmp_path / "monitor")
    from fiper.monitor.artifact import _own_score_class

    assert _own_score_class({"name": "ace"}) is None  # fiper's own scores keep the refit fix alone


def test_launch_fit_and_calibrate_take_a_score_by_its_import_path(plugin, tmp_path):
    helpers = importlib.util.spec_from_file_location("monitor_launch", Path(__file__).parents[1] / "monitor" / "test_monitor_launch.py")
    launch_tests = importlib.util.module_from_spec(helpers)
    helpers.loader.exec_module(launch_tests)  # its store writer and hydra runner
    from launch import calibrate, fit

    module, name, path = plugin
    fit_store = launch_tests.write_rollouts(tmp_path / "fit.zarr", 10, seed=0)
    cal_store = launch_tests.write_rollouts(tmp_path / "cal.zarr", 12, seed=1)
    out = tmp_path / "monitor"
    launch_tests.run(fit, "fit", [f"data={fit_store}", f"out={out}", *launch_tests.SMALL, f'+monitor.scores.mine={{score: "{path}"}}',
                                  "+monitor.windows.mine=2", "monitor.rule=or"])
    forget(module, name)  # launch.calibrate in a new process
    launch_tests.run(calibrate, "calibrate", [f"data={cal_store}", f"monitor_dir={out}", "delta=0.1"])
    forget(module, name)
    loaded = load_monitor(out)
    assert loaded.calibrated and loaded.scores["mine"].name == name and loaded.rule == "or"


def test_errors_name_the_fix(plugin):
    module, name, path = plugin
    with pytest.raises(ValueError, match="import path '<module>:<Class>'"):
        ScoreSpec.of({"score": "no_such_score"})
    with pytest.raises(ValueError, match="does not import .*PYTHONPATH"):
        ScoreSpec.of({"score": "no_such_module_xyz:Score"})
    with pytest.raises(ValueError, match="has no class 'Missing'"):
        ScoreSpec.of({"score": f"{module}:Missing"})
    cls = score_class(path)
    clash = type("MyACE", (cls,), {"name": "ace"})
    with pytest.raises(ValueError, match="taken by fiper.scores.ace:ACE; give MyACE another name"):
        register_score(clash)


def test_a_reloaded_module_registers_its_score_again(plugin):
    module, name, path = plugin
    first = score_class(path)
    again = importlib.reload(sys.modules[module]).EmbeddingDistance
    assert again is not first and register_score(again) is again and SCORES[name] is again


class StateOffset(ScoreBase):
    """A user score of the raw observation: the 'state' key's distance to its fit mean."""

    name = "test_state_offset"
    needs = frozenset({"observation"})
    dtype = torch.float64
    backend = "numpy"

    def _fit(self, embeddings, samples, decision_ends, seed, observations):
        self.mean = np.asarray(observations["state"][:]).mean(0)

    def _score(self, embeddings, samples, observations):
        return np.linalg.norm(np.asarray(observations["state"]) - self.mean, axis=1)


def test_an_observation_score_on_score_base_gets_the_observations_offline_and_online():
    data = Decisions(seed=0, lengths=(6,) * 12)
    score = StateOffset().fit(data.fit_data())
    offline = score.score_offline(decision_ends=data.decision_ends, observations=data.observations)
    np.testing.assert_allclose(offline, np.linalg.norm(data.observations["state"] - data.observations["state"].mean(0), axis=1))
    assert score.step(observation={"state": data.observations["state"][3]}) == pytest.approx(offline[3])
    monitor = FailureMonitor({"obs": score}, identity(data), windows={"obs": 1}, rule="single")
    monitor.calibrate(monitor.score_offline(None, None, data.decision_ends, observations=data.observations), data.decision_ends, delta=0.1)
    monitor.reset()
    verdict = monitor.step(data.embeddings[0], data.samples[0], observation={"state": data.observations["state"][0]})
    assert not verdict.failsafe and verdict.scores["obs"] == pytest.approx(offline[0])
    with pytest.raises(ValueError, match="reads the raw observation but ScoreFitData.observations .* holds none"):
        StateOffset().fit(ScoreFitData(data.embeddings, None, data.decision_ends))
    with pytest.raises(ValueError, match="reads the raw observation but the decision holds none"):
        score.step(data.embeddings[0], None)
