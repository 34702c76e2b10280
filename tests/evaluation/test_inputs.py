"""Loading stores: clear errors for mismatched runs; globs and directories merge runs."""

from __future__ import annotations

import numpy as np
import pytest

from calibration import InsufficientCalibrationError
from evaluation_helpers import small_config
from fiper.evaluation import RolloutError, evaluate_rollouts, expand_stores, load_rollouts
from fiper.evaluation.config import DEFAULT_METHODS
from fiper.evaluation.metrics import physical_onset
from benchmarks.synthetic_stores import SyntheticTask, write_synthetic_store
from fiper.storage import EpisodeStore


def test_missing_paths_and_empty_globs(tmp_path):
    with pytest.raises(RolloutError, match="no rollout store at") as absolute:
        expand_stores(str(tmp_path / "nope.zarr"))
    assert "working directory" not in str(absolute.value)
    with pytest.raises(RolloutError, match=r"no rollout store at runs/nope.zarr \(relative to the working directory /"):
        expand_stores("runs/nope.zarr")  # a relative path says where it was looked for
    with pytest.raises(RolloutError, match="matches no zarr store"):
        expand_stores(str(tmp_path / "*.zarr"))


def test_directories_lists_and_tasks(tmp_path):
    small = dict(n_success_id=3, n_success_ood=1, n_fail_id=1, n_fail_ood=1)
    a = write_synthetic_store(tmp_path / "sweep" / "s0" / "r.zarr", seed=0, **small).path
    b = write_synthetic_store(tmp_path / "sweep" / "s1" / "r.zarr", seed=1, **small).path
    other = write_synthetic_store(tmp_path / "other.zarr", SyntheticTask(name="push"), seed=2, **small).path
    assert expand_stores(str(tmp_path / "sweep")) == [a.resolve(), b.resolve()]
    assert expand_stores([str(a), str(b), str(a)]) == [a.resolve(), b.resolve()]
    tasks = load_rollouts(f"{tmp_path / 'sweep'},{other}")
    assert list(tasks) == ["synthetic", "push"]
    merged = tasks["synthetic"]
    assert merged.n_episodes == 12 and list(merged.store_index) == [0] * 6 + [1] * 6
    assert merged.decision_ends[-1] == merged.embeddings.shape[0] == merged.samples.shape[0] == merged.env_step.shape[0]
    assert merged.control_period_s == 0.05 and merged.n_action_steps == 2


def test_runs_with_different_shapes_refuse_to_merge(tmp_path):
    small = dict(n_success_id=3, n_success_ood=1, n_fail_id=1, n_fail_ood=1)
    write_synthetic_store(tmp_path / "a.zarr", seed=0, **small)
    write_synthetic_store(tmp_path / "b.zarr", SyntheticTask(embedding_dim=5), seed=1, **small)
    with pytest.raises(RolloutError, match=r"D=5.*D=8.*same policy"):
        load_rollouts(str(tmp_path / "*.zarr"))


def test_too_few_id_successes_for_the_delta_grid(tmp_path):
    path = write_synthetic_store(tmp_path / "r.zarr", n_success_id=20, n_success_ood=2, n_fail_id=4, n_fail_ood=2).path
    with pytest.raises(InsufficientCalibrationError, match=r"8 calibration episodes.*delta=0.01 needs at least 99.*at least 247 successful"):
        evaluate_rollouts(str(path), small_config(deltas=[0.01, 0.1], threshold_types=["constant"], methods={"fiper": DEFAULT_METHODS["fiper"]}))
    # a jointly calibrated method splits the calibration episodes into D1 / D2, like the band
    with pytest.raises(InsufficientCalibrationError, match=r"'constant \(joint calibration\)' at delta=0.01 needs at least 197"):
        evaluate_rollouts(str(path), small_config(deltas=[0.01, 0.1], threshold_types=["constant"]))


def test_stores_without_a_failure_stop_before_any_configuration_is_chosen(tmp_path):
    """No failure, no detection metric: the choice on validation would be among NaNs, so the evaluation says what to add."""
    path = tmp_path / "all_ok.zarr"
    write_synthetic_store(path, n_success_id=60, n_success_ood=15, n_fail_id=0, n_fail_ood=0)
    with pytest.raises(ValueError, match=r"all 75 episodes of its stores succeeded, so no detector can be scored or chosen.*"
                                         r"Add rollouts where the policy fails"):
        evaluate_rollouts(str(path), small_config())
    one = tmp_path / "one_failure.zarr"
    write_synthetic_store(one, n_success_id=60, n_success_ood=15, n_fail_id=0, n_fail_ood=1)
    with pytest.raises(ValueError, match=r"its validation split holds none of its 1 failures"):
        evaluate_rollouts(str(one), small_config(split={"validation": 0.4}))  # the one failure goes to test


def test_stores_simulated_with_different_mujoco_releases_carry_a_note(tmp_path):
    """A task's stores recorded under two MuJoCo releases load, with a note naming the releases and the stores; one
    release (or stores that record none) gives no note."""
    small = dict(n_success_id=3, n_success_ood=1, n_fail_id=1, n_fail_ood=1)
    paths = [write_synthetic_store(tmp_path / f"{n}.zarr", seed=i, **small).path for i, n in enumerate("abc")]
    assert not [n for n in load_rollouts(str(tmp_path / "*.zarr"))["synthetic"].notes if "releases" in n]
    for path, version in zip(paths, ("4.0.0", "4.0.1", "4.0.1")):
        EpisodeStore.open(path, mode="a").set_attrs(software={"mujoco": version, "torch": "2.13.0"})
    notes = [n for n in load_rollouts(str(tmp_path / "*.zarr"))["synthetic"].notes if "releases" in n]
    assert notes == ["the stores were recorded with different mujoco releases: 4.0.0 (a.zarr); 4.0.1 (b.zarr, c.zarr); their "
                     "episodes may differ by more than their shifts: record them again with one release"]


def _foreign_store(path, *, samples_axes=(0, 1, 2, 3), env_step_offset=0, success=bool, shift="none", embedding_shape=None,
                   steps=(0, 2, 4, 6), failures=None):
    """A store as another recorder writes it through append_episode: 6 episodes of 8 steps, 4 decisions each."""
    rng = np.random.default_rng(0)
    store = EpisodeStore.create(path, attrs={"task": "foreign", "control_period_s": 0.1, "n_action_steps": 2})
    for i in range(6):
        embedding = rng.normal(size=(4, 5)).astype(np.float32)
        decisions = {"embedding": embedding.reshape(embedding_shape or embedding.shape),
                     "samples": rng.normal(size=(4, 6, 3, 2)).astype(np.float16).transpose(samples_axes),
                     "env_step": np.asarray(steps if i == 3 else (0, 2, 4, 6)) + env_step_offset * i}
        meta = {"success": success(i % 3 != 0)} | ({} if shift is None else {"shift": shift if i < 4 else "push"})
        if failures is not None:  # {episode: (failure_step, failure_reason)}, the others (-1, '')
            step, reason = failures.get(i, (-1, ""))
            meta |= {"failure_step": step, "failure_reason": reason}
        store.append_episode({"action": np.zeros((8, 2), np.float32)}, decisions=decisions, meta=meta)
    return path


def test_a_foreign_store_loads_as_written(tmp_path):
    rollouts = load_rollouts(str(_foreign_store(tmp_path / "f.zarr")))["foreign"]
    assert rollouts.success.tolist() == [False, True, True, False, True, True]
    assert rollouts.sample_shape == (6, 3, 2) and rollouts.env_step[:4].tolist() == [0, 2, 4, 6]
    # failures without meta/failure_step have no onset: the report says why its lead columns are empty
    assert any("no meta/failure_step" in note for note in rollouts.notes)


@pytest.mark.parametrize("mistake, message", [
    (dict(success=str), r"meta/success holds <U5 values \(\['False', 'True', 'True'\].*store one bool per episode"),
    (dict(samples_axes=(0, 1, 3, 2)), r"samples has per-decision shape \(B, H, A\)=\(6, 2, 3\) but data/action has 2 action dims"),
    (dict(env_step_offset=8), r"env_step of episode 1 reads \[8, 10, 12, 14\].*the episode has 8 env steps \(5 episode\(s\)"),
    (dict(steps=(0, 4, 2, 6)), r"env_step of episode 3 reads \[0, 4, 2, 6\] at decisions 0\.\. .*\(1 episode\(s\) like it\)"),
    (dict(steps=(2, 4, 6, 8)), r"env_step of episode 3 reads \[4, 6, 8\] at decisions 1\.\. .*8 env steps \(1 episode"),
    (dict(embedding_shape=(4, 1, 5)), r"decisions/embedding has per-decision shape \(1, 5\); it must be \(N, D\)"),
])
def test_mistakes_of_a_foreign_recorder_are_named_with_their_fix(tmp_path, mistake, message):
    """A text success label ('False' reads as True), swapped sample axes, env steps counted over the whole store and an
    embedding with an extra axis would all be scored silently; each stops the load naming the store and the fix."""
    path = _foreign_store(tmp_path / "f.zarr", **mistake)
    with pytest.raises(RolloutError, match=message):
        load_rollouts(str(path))


def test_an_in_distribution_label_spelt_otherwise_is_named_in_the_notes(tmp_path):
    path = _foreign_store(tmp_path / "f.zarr", shift="None")  # episodes 0-3 'None', 4-5 'push'
    rollouts = load_rollouts(str(path))["foreign"]
    assert rollouts.ood.all()
    assert any("meta/shift holds 'None' on 4 episode(s), counted as shifted" in note for note in rollouts.notes)
    clean = load_rollouts(str(_foreign_store(tmp_path / "g.zarr")))["foreign"]
    assert not any("meta/shift holds" in note for note in clean.notes)


def test_successes_carrying_a_failure_are_named_in_the_notes(tmp_path):
    """Episodes 1 and 4 succeed (success is i % 3 != 0) yet carry an onset or a reason: counted as successes, with a note."""
    failures = {0: (5, "dropped"), 3: (6, "dropped"), 1: (3, ""), 4: (-1, "collision")}
    rollouts = load_rollouts(str(_foreign_store(tmp_path / "f.zarr", failures=failures)))["foreign"]
    assert rollouts.success.tolist() == [False, True, True, False, True, True]
    assert physical_onset(rollouts.failed, rollouts.failure_step, rollouts.failure_reason).tolist() == [5, -1, -1, 6, -1, -1]
    (note,) = [n for n in rollouts.notes if "labelled meta/success true" in n]
    assert note.startswith("f.zarr: 2 episode(s) labelled meta/success true also carry a failure") and "episodes [1, 4];" in note
    assert "set meta/success false" in note and "set failure_step -1 and failure_reason ''" in note
    clean = load_rollouts(str(_foreign_store(tmp_path / "g.zarr", failures={0: (5, "dropped")})))["foreign"]
    assert not [n for n in clean.notes if "labelled meta/success true" in n]


def test_a_store_without_shift_labels_says_all_its_episodes_count_as_in_distribution(tmp_path):
    rollouts = load_rollouts(str(_foreign_store(tmp_path / "f.zarr", shift=None)))["foreign"]
    assert not rollouts.ood.any()
    assert any("no meta/shift, so its 6 episode(s) count as in distribution" in note for note in rollouts.notes)
    assert not any("no meta/shift" in note for note in load_rollouts(str(_foreign_store(tmp_path / "g.zarr")))["foreign"].notes)


def test_no_episode_labelled_none_names_the_in_distribution_label(tmp_path):
    path = _foreign_store(tmp_path / "f.zarr", shift="")
    with pytest.raises(RolloutError, match=r"no episode is labelled in distribution; meta/shift holds \['', 'push'\].*'none' exactly"):
        evaluate_rollouts(str(path), small_config())


@pytest.mark.parametrize("edit, message", [
    ("drop", r"has decisions but no meta/decision_ends for its 6 episodes"),
    ("per_episode", r"meta/decision_ends \[4, 5, 3, 4, 4\] ... decreases at episode 2; it holds the cumulative end decision"),
])
def test_decision_ends_written_without_the_store_api(tmp_path, edit, message):
    """A store written with zarr directly (no checksum records) whose decision_ends are missing or per-episode counts."""
    import zarr

    path = _foreign_store(tmp_path / "f.zarr")
    root = zarr.open_group(str(path), mode="a")
    del root["meta/episode_checksums"]
    if edit == "drop":
        del root["meta/decision_ends"]
    else:
        root["meta/decision_ends"][:] = [4, 5, 3, 4, 4, 4]  # decisions per episode instead of their running sum
    with pytest.raises(RolloutError, match=message):
        load_rollouts(str(path))
