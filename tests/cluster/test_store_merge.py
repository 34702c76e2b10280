"""fiper.storage.merge / launch.merge_stores: one store from a sweep's per-job stores, no episode lost or
doubled, stores of other origins refused, the sources untouched, and the result evaluates as they do."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from benchmarks.synthetic_stores import SyntheticTask, write_synthetic_store
from fiper.fingerprint import make_fingerprint
from fiper.storage import DamagedStoreError, EpisodeStore
from fiper.storage.merge import MergeError, merge_stores
from launch import evaluate, merge_stores as merge_entry
from launch.validate import ConfigError

CONF = Path(__file__).resolve().parents[2] / "launch" / "conf"
SMALL = dict(n_success_id=6, n_success_ood=2, n_fail_id=2, n_fail_ood=2)  # 12 episodes
ORIGIN = {"policy": "a" * 64, "monitor": None, "env": {"name": "synthetic"}, "sampling": {"num_samples": 8}}


def _store(path: Path, seed: int, task: SyntheticTask | None = None, origin: dict | None = None, **sizes) -> Path:
    """A synthetic rollout store recorded with the fingerprint of ``origin``."""
    write_synthetic_store(path, task, seed=seed, **(sizes or SMALL))
    EpisodeStore.open(path, mode="a").set_attrs(fingerprint=make_fingerprint(origin or ORIGIN))
    return path


def _tree_digest(path: Path) -> dict[str, str]:
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.rglob("*")) if p.is_file()}


def _compose(name: str, overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        return compose(config_name=name, overrides=overrides)


def test_merge_keeps_every_episode_once_and_leaves_the_sources_untouched(tmp_path):
    a, b = _store(tmp_path / "a.zarr", 0), _store(tmp_path / "b.zarr", 1)
    again = _store(tmp_path / "again.zarr", 0)  # job a run twice: every episode an exact duplicate
    before = {p: _tree_digest(p) for p in (a, b, again)}
    outcome = merge_stores([a, again, b], tmp_path / "m.zarr")
    assert (outcome.taken, outcome.duplicates) == ([12, 0, 12], [0, 12, 0])
    assert "24 episodes, 12 exact duplicates skipped" in outcome.describe()
    assert {p: _tree_digest(p) for p in (a, b, again)} == before
    merged, sa, sb = EpisodeStore.open(tmp_path / "m.zarr"), EpisodeStore.open(a), EpisodeStore.open(b)
    assert merged.n_episodes == 24 and merged.n_steps == sa.n_steps + sb.n_steps
    np.testing.assert_array_equal(merged.meta("seed"), np.r_[sa.meta("seed"), sb.meta("seed")])
    for key in merged.meta_keys:
        np.testing.assert_array_equal(merged.meta(key), np.r_[sa.meta(key), sb.meta(key)])
    for i, (src, j) in enumerate([(sa, j) for j in range(12)] + [(sb, j) for j in range(12)]):
        for read in (EpisodeStore.episode, EpisodeStore.episode_decisions):
            got, want = read(merged, i), read(src, j)
            assert got.keys() == want.keys()
            for key, value in want.items():
                np.testing.assert_array_equal(got[key], value)
    assert merged.attrs["fingerprint"] == sa.attrs["fingerprint"] and merged.attrs["task"] == "synthetic"
    assert len(merged.attrs["store_id"]) == 32 and merged.attrs["store_id"] not in {sa.attrs.get("store_id"), sb.attrs.get("store_id")}
    assert [m["episodes"] for m in merged.attrs["merged_from"]] == [12, 12, 12]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zarr", "again.zarr", "b.zarr", "m.zarr"]  # nothing else beside it


def _labelled(path: Path, cells: list[tuple[str, float, int]]) -> Path:
    """A store with one short episode per (shift, severity, seed)."""
    store = EpisodeStore.create(path, attrs={"task": "synthetic", "fingerprint": make_fingerprint(ORIGIN)})
    for k, (shift, severity, seed) in enumerate(cells):
        store.append_episode({"action": np.full((3, 2), k, np.float32)}, decisions={"embedding": np.full((2, 4), seed, np.float32)},
                             meta={"success": True, "shift": shift, "severity": severity, "seed": seed})
    return path


def test_partly_overlapping_stores_skip_only_the_shared_episodes(tmp_path):
    a = _labelled(tmp_path / "a.zarr", [("none", 0.0, s) for s in range(6)])
    part = _labelled(tmp_path / "part.zarr", [("none", 0.0, s) for s in range(3, 8)])  # seeds 3-5 again (a job rerun wider)
    outcome = merge_stores([a, part], tmp_path / "m.zarr")
    assert (outcome.taken, outcome.duplicates) == ([6, 2], [0, 3])
    assert list(EpisodeStore.open(tmp_path / "m.zarr").meta("seed")) == list(range(8))


def test_the_same_seed_under_another_shift_or_severity_is_kept(tmp_path):
    a = _labelled(tmp_path / "a.zarr", [("none", 0.0, 5), ("obstacle", 0.5, 5)])
    b = _labelled(tmp_path / "b.zarr", [("obstacle", 1.0, 5), ("none", 0.0, 6), ("obstacle", 0.5, 5)])
    outcome = merge_stores([a, b], tmp_path / "m.zarr")
    assert (outcome.taken, outcome.duplicates) == ([2, 2], [0, 1])
    merged = EpisodeStore.open(tmp_path / "m.zarr")
    assert list(zip(merged.meta("shift"), merged.meta("severity"), merged.meta("seed"))) == [
        ("none", 0.0, 5), ("obstacle", 0.5, 5), ("obstacle", 1.0, 5), ("none", 0.0, 6)]
    assert [merged.episode(i)["action"][0, 0] for i in range(4)] == [0, 1, 0, 1]  # the first copy of each is kept


@pytest.mark.parametrize(("change", "named"), [
    ({"origin": {**ORIGIN, "policy": "b" * 64}}, "fingerprints differ: policy: sha256:aaaaaaaaaaaa -> sha256:bbbbbbbbbbbb"),
    ({"origin": {**ORIGIN, "sampling": {"num_samples": 16}}}, "sampling.num_samples: 8 -> 16"),
    ({"task": SyntheticTask(name="push")}, "attr task: 'synthetic' vs 'push'"),
    ({"task": SyntheticTask(embedding_dim=6)}, "decisions/embedding: rows (8,) float32 vs rows (6,) float32"),
    ({"task": SyntheticTask(control_period_s=0.1)}, "attr control_period_s: 0.05 vs 0.1"),
])
def test_stores_of_another_origin_are_refused_and_nothing_is_written(tmp_path, change, named):
    a = _store(tmp_path / "a.zarr", 0)
    b = _store(tmp_path / "b.zarr", 1, task=change.get("task"), origin=change.get("origin"))
    with pytest.raises(MergeError, match="cannot be merged with") as err:
        merge_stores([a, b], tmp_path / "m.zarr")
    assert named in str(err.value) and str(b) in str(err.value) and "launch.evaluate rollouts=" in str(err.value)
    assert not (tmp_path / "m.zarr").exists() and not list(tmp_path.glob(".m.zarr.*"))  # no hidden partial store either


def test_a_store_without_a_fingerprint_does_not_merge_with_one_that_has_it(tmp_path):
    a = _store(tmp_path / "a.zarr", 0)
    bare = write_synthetic_store(tmp_path / "bare.zarr", seed=1, **SMALL).path
    with pytest.raises(MergeError, match=f"{bare} cannot be merged with {a}: only {a} records a fingerprint"):
        merge_stores([a, bare], tmp_path / "m.zarr")


def test_bad_outputs_and_sources_are_refused_with_the_fix(tmp_path):
    a = _store(tmp_path / "a.zarr", 0)
    with pytest.raises(MergeError, match=r"already exists; merge into a new path \(out=<new store>\)"):
        merge_stores([a], a)
    with pytest.raises(MergeError, match="given more than once"):
        merge_stores([a, tmp_path / "." / "a.zarr"], tmp_path / "m.zarr")
    with pytest.raises(MergeError, match="no stores to merge"):
        merge_stores([], tmp_path / "m.zarr")
    unlabeled = EpisodeStore.create(tmp_path / "u.zarr")
    unlabeled.append_episode({"action": np.zeros((3, 2), np.float32)}, meta={"success": True})
    with pytest.raises(MergeError, match="no meta/shift, meta/severity, meta/seed"):
        merge_stores([tmp_path / "u.zarr"], tmp_path / "m.zarr")
    b = _store(tmp_path / "b.zarr", 1)
    chunk = next((b / "data" / "action").glob("0*"))
    chunk.write_bytes(chunk.read_bytes()[:-7])  # a truncated chunk file, met after a's 12 episodes were copied
    with pytest.raises(DamagedStoreError, match=f"{b} is damaged.*launch.repair_store"):
        merge_stores([a, b], tmp_path / "m.zarr")
    assert not (tmp_path / "m.zarr").exists() and not list(tmp_path.glob(".m.zarr.*"))  # no partial store left


def test_ctrl_c_half_way_leaves_no_merged_store(tmp_path, monkeypatch):
    a, b = _store(tmp_path / "a.zarr", 0), _store(tmp_path / "b.zarr", 1)
    append = EpisodeStore.append_episode

    def interrupted(self, *args, **kwargs):
        if self.n_episodes == 15:  # in b's episodes
            raise KeyboardInterrupt
        return append(self, *args, **kwargs)

    monkeypatch.setattr(EpisodeStore, "append_episode", interrupted)
    with pytest.raises(KeyboardInterrupt):
        merge_stores([a, b], tmp_path / "m.zarr")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zarr", "b.zarr"]  # no m.zarr, no hidden partial copy
    monkeypatch.undo()
    assert merge_stores([a, b], tmp_path / "m.zarr").n_episodes == 24


def test_launch_merge_stores_refuses_bad_keys_before_reading_anything():
    with pytest.raises(ConfigError, match=r"nothing was run or written:\n  stores=\[\]: expected a non-empty list.*\n  out=3: expected a "
                                          r"non-empty string"):
        merge_entry.run(_compose("merge_stores", ["stores=[]", "out=3"]))


def test_the_merged_store_evaluates_exactly_as_its_sources_do(tmp_path):
    sizes = dict(n_success_id=30, n_success_ood=4, n_fail_id=6, n_fail_ood=4)
    a, b = _store(tmp_path / "a.zarr", 0, **sizes), _store(tmp_path / "b.zarr", 1, **sizes)
    dup = _store(tmp_path / "dup.zarr", 1, **sizes)
    outcome = merge_entry.run(_compose("merge_stores", [f"stores=[{a},{b},{dup}]", f"out={tmp_path / 'merged.zarr'}"]))
    assert (outcome.n_episodes, outcome.n_duplicates) == (88, 44)
    only_ace = ["~methods", "+methods={ace:{scores:[ace]}}", "references=[]", "baselines=[]", "deploy_method=null",
                "plot_method=ace", "deltas=[0.1,0.2]", "plots=false", "progress=false"]
    records = {}
    for name, rollouts in (("sources", f"[{a},{b}]"), ("merged", str(tmp_path / "merged.zarr"))):
        evaluate.run(_compose("evaluate", [f"rollouts={rollouts}", f"out={tmp_path / name}", *only_ace]))
        doc = json.loads((tmp_path / name / "metrics.json").read_text())
        assert doc["tasks"]["synthetic"]["episodes"] == 88
        records[name] = doc["records"]
    assert records["merged"] == records["sources"] and len(records["merged"]) == (3 + 1) * 3  # threshold types + chosen, 2 deltas + mean


@pytest.mark.parametrize("period", [50, 0.0001])
def test_a_source_with_an_implausible_period_is_refused_naming_it_and_nothing_is_written(tmp_path, period):
    a = _store(tmp_path / "a.zarr", 0)
    ms = _store(tmp_path / "ms.zarr", 1, task=SyntheticTask(control_period_s=period))
    for order in ([a, ms], [ms, a]):
        with pytest.raises(MergeError, match=rf"{ms}: attrs control_period_s = {period:g} s per env step lies outside the "
                                             r"plausible control periods 0.0005 .. 10 s.*set_attrs\(control_period_s=<seconds"):
            merge_stores(order, tmp_path / "m.zarr")
    assert not (tmp_path / "m.zarr").exists() and not list(tmp_path.glob(".m.zarr.*"))  # no hidden partial store either


def test_a_period_recorded_by_some_sources_only_is_refused_and_by_none_is_kept_unknown(tmp_path):
    a, b = _store(tmp_path / "a.zarr", 0), _store(tmp_path / "b.zarr", 1)
    EpisodeStore.open(b, mode="a").set_attrs(control_period_s=None)
    with pytest.raises(MergeError, match=rf"{b} records no control_period_s attr, which the other stores do; correct each such"):
        merge_stores([a, b], tmp_path / "m.zarr")
    assert not (tmp_path / "m.zarr").exists()
    EpisodeStore.open(a, mode="a").set_attrs(control_period_s=None)
    merge_stores([a, b], tmp_path / "m.zarr")
    assert EpisodeStore.open(tmp_path / "m.zarr").attrs.get("control_period_s") is None  # unknown, as in its sources
