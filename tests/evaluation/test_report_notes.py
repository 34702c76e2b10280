"""What a store's labels leave unknown or misspell is said where a reader looks first: at the top of the task's section of
report.md and in the terminal summary, not only under Data."""

from __future__ import annotations

from benchmarks.synthetic_stores import write_synthetic_store
from evaluation_helpers import ONE_RUN, small_config
from fiper.evaluation import evaluate_rollouts, write_outputs
from fiper.evaluation.render.terminal import summary_table


def test_data_notes_open_the_report_and_reach_the_terminal(tmp_path):
    write_synthetic_store(tmp_path / "r.zarr", seed=2, failure_reasons=["time_out", "collision"], **ONE_RUN)
    methods = {"rnd_oe": {"scores": ["rnd_oe"], "rule": "single"}, "mahalanobis": {"scores": ["mahalanobis"], "rule": "single"},
               "elapsed": {"scores": ["elapsed"], "rule": "single", "windows": [1]}}
    config = small_config(methods=methods, deltas=[0.1, 0.2], windows=[1], threshold_types=["constant"],
                          baselines=["mahalanobis"], references=["elapsed"], plot_method=None)
    result = evaluate_rollouts(str(tmp_path / "r.zarr"), config)
    said = "meta/failure_reason holds 'time_out'"
    assert f"note: r.zarr: {said}" in summary_table(result)
    report = write_outputs(result, tmp_path / "out", plots=False)["report"].read_text()
    section = report[report.index("## Task"):]
    assert section.index(said) < section.index("### Data")  # opens the task, before the tables
    assert section.count(said) == 1 and "noted at the top of this task" in section
