"""The trace plot draws the thresholds and alarms the test metrics used, a jointly calibrated method's shared
height included, and by default for the deployed method."""

from __future__ import annotations

import numpy as np

from benchmarks.synthetic_stores import SyntheticTask, write_synthetic_store
from evaluation_helpers import small_config
from fiper.aggregation import combine
from fiper.evaluation import evaluate_rollouts
from fiper.evaluation.render.plots import plot_task, threshold_curves

TWO = {"knn": [1, 3], "elapsed": [1]}
METHODS = {"or_joint": {"scores": ["knn", "elapsed"], "rule": "or", "joint": True, "windows": TWO},
           "and_separate": {"scores": ["knn", "elapsed"], "rule": "and", "windows": TWO}}


def _first_alarms(task, method, kind, d):
    spec, res = task.spec_of(method, kind), task.methods[method].types[kind]
    curves = threshold_curves(task, method, kind, d, d1_fraction=0.5, seed=0)
    etas = [task.grids[s].eta[task.grids[s].index(res.windows[s])] for s in spec.scores]
    out = []
    for ep in task.split.test:
        n = int(task.rollouts.lengths[ep])
        alarm = combine(np.stack([e[ep, :n] > c[:n] for e, c in zip(etas, curves)]), spec.rule)
        out.append(int(np.argmax(alarm)) if alarm.any() else -1)
    return np.array(out)


def test_traces_draw_the_thresholds_and_alarms_the_test_metrics_used(tmp_path):
    task = SyntheticTask(name="shifts", drift=0.8, fail_decisions=(8, 12))
    path = write_synthetic_store(tmp_path / "s.zarr", task, seed=3, n_success_id=120, n_success_ood=0, n_fail_ood=0, n_fail_id=30).path
    config = small_config(methods=METHODS, baselines=[], references=[], deploy_method="or_joint", plot_method=None,
                          threshold_types=["constant", "band"], deltas=(0.1, 0.2), split={"fit": 0.25, "calibration": 0.35, "validation": 0.5})
    result = evaluate_rollouts(str(path), config).tasks["shifts"]
    for method in METHODS:
        for kind in ("constant", "band"):
            for d in range(2):
                recorded = result.methods[method].types[kind].test_alarms.first_alarm[0, d]
                np.testing.assert_array_equal(_first_alarms(result, method, kind, d), recorded)
    # the shared height is not either score's own threshold: drawing the grid's curves would misplace the alarms
    res = result.methods["or_joint"].types["constant"]
    grid = result.grids["knn"]
    own = grid.gamma["constant"][grid.index(res.windows["knn"]), 0]
    assert not np.allclose(threshold_curves(result, "or_joint", "constant", 0)[0], own)

    drawn = plot_task(result, tmp_path / "plots", method=None, kind=None, delta=0.1)
    assert drawn["method"] == "or_joint" and drawn["threshold_type"] == "band"
    assert (tmp_path / "plots" / drawn["files"]["traces"]).stat().st_size > 5000
