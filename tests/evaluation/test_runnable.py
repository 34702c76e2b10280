"""Stores that record only part of a decision (no sample batch, no embedding, no observations) are evaluated
with the methods that read what they hold; the others are left out of that task with a note."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.synthetic_stores import SyntheticTask, write_synthetic_store
from evaluation_helpers import ONE_RUN, small_config
from fiper.evaluation import RolloutError, evaluate_rollouts, load_rollouts, write_outputs
from fiper.evaluation.deploy import write_monitor_files
from fiper.evaluation.render.terminal import summary_table
from fiper.storage import EpisodeStore

METHODS = {
    "fiper": {"scores": ["rnd_oe", "ace"], "rule": "and"},
    "rnd_oe": {"scores": ["rnd_oe"], "rule": "single"},
    "ace": {"scores": ["ace"], "rule": "single"},
    "mahalanobis": {"scores": ["mahalanobis"], "rule": "single"},
    "elapsed": {"scores": ["elapsed"], "rule": "single", "windows": [1]},
    "obs_novelty": {"scores": ["obs_novelty"], "rule": "single"},
    "fiper_select": {"select": ["fiper", "rnd_oe", "ace"], "keep_first_se": 1.0},
}


def _config(**overrides):
    values = dict(methods=METHODS, deltas=[0.1, 0.2], windows=[1, 3], threshold_types=["constant", "band"],
                  baselines=["mahalanobis"], references=["elapsed", "obs_novelty"], plot_method="fiper")
    values.update(overrides)
    return small_config(**values)


@pytest.fixture(scope="module")
def full_and_embedding_only(tmp_path_factory):
    """The same episodes recorded twice: with every decision input, and with the embedding alone."""
    root = tmp_path_factory.mktemp("partial")
    write_synthetic_store(root / "full.zarr", seed=3, **ONE_RUN)
    write_synthetic_store(root / "embedding_only.zarr", seed=3, decision_keys=("embedding", "env_step"), **ONE_RUN)
    config = _config()
    return root, evaluate_rollouts(str(root / "full.zarr"), config), evaluate_rollouts(str(root / "embedding_only.zarr"), config)


def test_methods_reading_the_samples_are_left_out_and_the_rest_match_the_full_store(full_and_embedding_only):
    _, full, partial = full_and_embedding_only
    task, whole = partial.tasks["synthetic"], full.tasks["synthetic"]
    assert list(task.methods) == ["rnd_oe", "mahalanobis", "elapsed", "obs_novelty", "fiper_select"]
    assert task.methods["fiper_select"].spec.select == ("rnd_oe",)
    for note in ("decisions/samples", "fiper, ace", "fiper_select chooses among rnd_oe only"):
        assert note in task.left_out
    assert not whole.left_out
    for name in ("rnd_oe", "mahalanobis", "elapsed", "obs_novelty"):  # same episodes, same splits: the same numbers
        for kind in ("constant", "band"):
            a, b = task.methods[name].types[kind].test, whole.methods[name].types[kind].test
            np.testing.assert_allclose(np.asarray(a["accuracy"], float), np.asarray(b["accuracy"], float))
            np.testing.assert_allclose(np.asarray(a["twa"], float), np.asarray(b["twa"], float))
    assert task.findings.deployed.method == "fiper_select"


def test_the_note_reaches_report_metrics_terminal_and_monitor_file(full_and_embedding_only, tmp_path):
    _, _, partial = full_and_embedding_only
    write_outputs(partial, tmp_path, plots=False)
    report = (tmp_path / "report.md").read_text()
    assert "**Note:** its stores record no decisions/samples" in report
    assert json.loads((tmp_path / "metrics.json").read_text())["tasks"]["synthetic"]["left_out"].startswith("its stores record no")
    assert "note: its stores record no decisions/samples" in summary_table(partial)
    written = write_monitor_files(partial, tmp_path)
    text = written["synthetic"].read_text()
    assert "num_samples: null" in text and "rnd_oe" in text and "ace" not in text.split("evaluated:")[0]


def test_store_with_labels_alone_runs_the_references_and_writes_no_monitor_file(tmp_path, capsys):
    write_synthetic_store(tmp_path / "labels.zarr", seed=1, decision_keys=("env_step",), **ONE_RUN)
    result = evaluate_rollouts(str(tmp_path / "labels.zarr"), _config())
    task = result.tasks["synthetic"]
    assert list(task.methods) == ["elapsed", "obs_novelty"]
    assert "no decisions/embedding, decisions/samples" in task.left_out and "no monitor file is written" in task.left_out
    assert write_monitor_files(result, tmp_path) == {}
    from launch.evaluate import print_deployed

    print_deployed(result, {})  # the deploy step's line says why there is no file
    said = capsys.readouterr().out
    assert "no monitor file for task 'synthetic': fiper_select was not evaluated, as its stores lack what it reads" in said
    assert "no decisions/embedding, decisions/samples" in said
    with pytest.raises(RolloutError, match=r"record no decisions/embedding, decisions/samples, which every configured method reads.*elapsed"):
        evaluate_rollouts(str(tmp_path / "labels.zarr"), _config(methods={"fiper": METHODS["fiper"]}, references=[], baselines=[],
                                                                    plot_method=None))


def test_stores_of_one_task_must_record_the_same_inputs(tmp_path):
    write_synthetic_store(tmp_path / "a.zarr", seed=0, **ONE_RUN)
    write_synthetic_store(tmp_path / "b.zarr", SyntheticTask(), seed=1, decision_keys=("embedding", "env_step"), **ONE_RUN)
    with pytest.raises(RolloutError, match=r"samples \(B, H, A\)=None .* \(None: not recorded\)"):
        load_rollouts(f"{tmp_path / 'a.zarr'},{tmp_path / 'b.zarr'}")


def test_store_without_decisions_at_all_is_named(tmp_path):
    store = EpisodeStore.create(tmp_path / "demos.zarr")
    store.append_episode({"action": np.zeros((5, 2))}, meta={"success": True})
    with pytest.raises(RolloutError, match=r"records no decisions \(a demonstration store\?\).*launch.stress"):
        load_rollouts(str(tmp_path / "demos.zarr"))
