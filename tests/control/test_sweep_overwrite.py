"""A sweep with overwrite keeps the store it replaces, whole, until it has recorded every episode of its own: a run that
stops on the way loses nothing, and a completed one leaves no copy behind."""

from __future__ import annotations

import pytest

from fiper.control import RolloutRecorder
from fiper.control.sweep import run_sweep
from fiper.storage import EpisodeStore
from test_sweep_summary import _Env, _result, _stub_episodes


def _old_store(path, episodes=3):
    rec = RolloutRecorder(path)
    for seed in range(episodes):
        result = _result(seed, {}, {}, {"shift": "old", "severity": 0.0})
        rec.write(result.steps, result.decisions, result.labels)


def test_a_sweep_that_fails_on_the_way_leaves_the_replaced_store_whole_beside_the_new_one(tmp_path, monkeypatch):
    _old_store(tmp_path / "r.zarr")
    _stub_episodes(monkeypatch, {}, {})
    envs = iter([_Env()])  # the second cell's env cannot be built

    def make_env(shift, severity):
        return next(envs)

    recorder = RolloutRecorder(tmp_path / "r.zarr", overwrite=True)
    with pytest.warns(UserWarning, match=r"its episodes are kept at .*r\.zarr\.replaced-"), pytest.raises(StopIteration):
        run_sweep(make_env, None, [("none", 0.0), ("push", 1.0)], range(2), recorder, progress=False)
    kept = EpisodeStore.open(recorder.replaced)
    assert kept.n_episodes == 3 and kept.meta("shift").tolist() == ["old"] * 3
    assert EpisodeStore.open(tmp_path / "r.zarr").meta("shift").tolist() == ["none", "none"]  # the new run's, resumable


def test_a_completed_sweep_deletes_the_store_it_replaced(tmp_path, monkeypatch):
    _old_store(tmp_path / "r.zarr")
    _stub_episodes(monkeypatch, {}, {})
    recorder = RolloutRecorder(tmp_path / "r.zarr", overwrite=True)
    with pytest.warns(UserWarning, match="replacing"):
        summary = run_sweep(lambda *_: _Env(), None, [("none", 0.0)], range(2), recorder, progress=False)
    assert summary.run_now == 2 and recorder.replaced is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.zarr"]
    assert EpisodeStore.open(tmp_path / "r.zarr").meta("shift").tolist() == ["none", "none"]


def test_an_empty_store_or_no_store_is_replaced_without_a_copy(tmp_path, monkeypatch):
    EpisodeStore.create(tmp_path / "e.zarr")
    _stub_episodes(monkeypatch, {}, {})
    for name in ("e.zarr", "new.zarr"):
        recorder = RolloutRecorder(tmp_path / name, overwrite=True)
        run_sweep(lambda *_: _Env(), None, [("none", 0.0)], range(1), recorder, progress=False)
        assert recorder.replaced is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.zarr", "new.zarr"]
