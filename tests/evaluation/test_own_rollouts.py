"""Stores ported from another robot stack's logs: labels and layout either read as meant or refused with the fix."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from benchmarks.synthetic_stores import write_synthetic_store
from fiper.evaluation import RolloutError, load_rollouts
from fiper.scores.observations import store_observations
from fiper.storage import EpisodeStore

SMALL = dict(n_success_id=6, n_success_ood=2, n_fail_id=3, n_fail_ood=3)


def _replace_meta(path, key, values):
    """Rewrite meta/<key> as another recorder would have written it (zarr directly)."""
    root = zarr.open_group(str(path), mode="a", zarr_format=2)
    del root[f"meta/{key}"]
    values = np.asarray(values)
    if values.dtype.kind == "U":
        root.create_array(f"meta/{key}", shape=values.shape, dtype=str)[:] = values
    else:
        root.create_array(f"meta/{key}", data=values)


def test_an_onset_in_seconds_is_refused_not_cut_to_another_step(tmp_path):
    path = write_synthetic_store(tmp_path / "own.zarr", **SMALL).path
    onset = np.asarray(zarr.open_group(str(path), mode="r")["meta/failure_step"][:])
    assert load_rollouts(str(path))["synthetic"].failure_step.tolist() == onset.tolist()
    _replace_meta(path, "failure_step", onset.astype(np.float64))  # whole steps as floats read as they are
    assert load_rollouts(str(path))["synthetic"].failure_step.tolist() == onset.tolist()
    _replace_meta(path, "failure_step", np.where(onset >= 0, onset * 0.05 + 0.025, -1.0))  # seconds
    with pytest.raises(RolloutError, match=r"meta/failure_step of episode \d+ is .*not a whole env step.*seconds divided"):
        load_rollouts(str(path))
    _replace_meta(path, "failure_step", np.where(onset >= 0, onset, np.nan))  # NaN for 'none'
    with pytest.raises(RolloutError, match=r"is nan .*-1 when there is none"):
        load_rollouts(str(path))


def test_a_timeout_spelled_another_way_is_named_in_the_notes(tmp_path):
    own = write_synthetic_store(tmp_path / "own.zarr", failure_reasons=["time_out", "Timeout", "off_table"], **SMALL).path
    notes = load_rollouts(str(own))["synthetic"].notes
    assert len([n for n in notes if "meta/failure_reason" in n]) == 2
    assert any("'time_out' on 2 failure(s), counted as physical failures" in n and "'timeout' exactly" in n for n in notes)
    exact = write_synthetic_store(tmp_path / "exact.zarr", failure_reasons=["timeout", "off_table"], **SMALL).path
    assert not [n for n in load_rollouts(str(exact))["synthetic"].notes if "failure_reason" in n]


def test_n_action_steps_inside_the_policy_attrs_places_the_observations_too(tmp_path):
    """Without decisions/env_step the env steps per decision come from the attrs, top level or inside 'policy' / 'env'
    (docs/evaluation.md): the labels and the observations obs_novelty reads take them from the same place."""
    path = write_synthetic_store(tmp_path / "own.zarr", decision_keys=("embedding", "samples"), **SMALL).path
    root = zarr.open_group(str(path), mode="a", zarr_format=2)
    attrs = dict(root.attrs)
    every = attrs.pop("n_action_steps")
    root.attrs.clear()
    root.attrs.update({**attrs, "policy": {"n_action_steps": every}})
    store = EpisodeStore.open(path)
    assert "n_action_steps" not in store.attrs
    rollouts = load_rollouts(str(path))["synthetic"]
    first = rollouts.env_step[: rollouts.decision_ends[0]]
    assert first.tolist() == (np.arange(first.size) * every).tolist()
    seen = store_observations(EpisodeStore.open(path))
    key = next(iter(seen))
    np.testing.assert_array_equal(seen[key][: first.size], store.episode(0)[key][first])


def test_logged_clocks_and_step_results_are_not_read_as_observations(tmp_path):
    """A stack's logs hold reward, done and a wall-clock time per step beside the observation; read as one, the time
    alone would tell rollouts recorded on different days apart."""
    store = EpisodeStore.create(tmp_path / "own.zarr", attrs={"task": "own", "n_action_steps": 2})
    for e in range(3):
        t = 6
        store.append_episode({"state": np.full((t, 2), e, np.float32), "action": np.zeros((t, 2), np.float32),
                              "timestamp": 1.7e9 + 100 * e + np.arange(t) * 0.1, "reward": np.zeros(t),
                              "done": np.arange(t) == t - 1, "next.success": np.zeros(t, bool)},
                             decisions={"embedding": np.zeros((3, 4), np.float32), "env_step": np.arange(3) * 2},
                             meta={"success": e != 1, "shift": "none"})
    rollouts = load_rollouts(str(tmp_path / "own.zarr"))["own"]
    assert rollouts.observation_keys == ("state",)
    assert sorted(store_observations(EpisodeStore.open(tmp_path / "own.zarr"))) == ["state"]
    assert any("['done', 'next.success', 'reward', 'timestamp'] are read as bookkeeping" in n for n in rollouts.notes)


def test_a_store_without_a_task_attr_beside_named_ones_is_refused(tmp_path):
    """In-distribution successes in one store, shifted rollouts in another written without the attrs: evaluated apart,
    the second would be a task with nothing to fit on, and the first one with no failures."""
    named = write_synthetic_store(tmp_path / "id.zarr", **SMALL).path
    unnamed = write_synthetic_store(tmp_path / "shifted.zarr", seed=1, **SMALL).path
    root = zarr.open_group(str(unnamed), mode="a", zarr_format=2)
    attrs = {k: v for k, v in root.attrs.items() if k != "task"}
    root.attrs.clear()
    root.attrs.update(attrs)
    with pytest.raises(RolloutError, match=r"shifted.zarr has no 'task' attr.*\('shifted'\).*\['synthetic'\].*set_attrs\(task='synthetic'\)"):
        load_rollouts([str(named), str(unnamed)])
    assert list(load_rollouts(str(unnamed))) == ["shifted"]  # alone, or with other unnamed stores, its name is its task


def test_the_same_rollouts_given_twice_are_named_in_the_notes(tmp_path):
    """A store of every rollout beside one of its in-distribution successes: the repeats could be fitted on and tested."""
    whole = write_synthetic_store(tmp_path / "all.zarr", **SMALL).path
    again = write_synthetic_store(tmp_path / "again.zarr", **SMALL).path  # the same seed: the same episodes
    other = write_synthetic_store(tmp_path / "other.zarr", seed=1, **SMALL).path
    notes = load_rollouts([str(whole), str(again)])["synthetic"].notes
    assert any(n.startswith("14 episode(s) repeat another episode's decisions exactly (first: episode 0 of again.zarr = "
                            "episode 0 of all.zarr)") for n in notes)
    assert not [n for n in load_rollouts([str(whole), str(other)])["synthetic"].notes if "repeat" in n]
