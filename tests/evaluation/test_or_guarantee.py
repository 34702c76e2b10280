"""An 'or' of indicators calibrated each on its own at delta bounds false alarms by K x delta, not delta: the
evaluation reports such a row as not guaranteed (not deployable, no FAR check against delta); 'and' and joint
calibration stay guaranteed."""

from __future__ import annotations

from benchmarks.synthetic_stores import SyntheticTask, write_synthetic_store
from evaluation_helpers import small_config
from fiper.evaluation import evaluate_rollouts
from fiper.rules import guarantees_delta

TWO = {"knn": [1], "elapsed": [1]}
METHODS = {"or_separate": {"scores": ["knn", "elapsed"], "rule": "or", "windows": TWO},
           "and_separate": {"scores": ["knn", "elapsed"], "rule": "and", "windows": TWO},
           "or_joint": {"scores": ["knn", "elapsed"], "rule": "or", "joint": True, "windows": TWO}}


def test_only_an_or_of_separately_calibrated_indicators_loses_the_guarantee(tmp_path):
    task = SyntheticTask(name="shifts", drift=0.8, fail_decisions=(8, 12))
    path = write_synthetic_store(tmp_path / "s.zarr", task, seed=3, n_success_id=120, n_success_ood=0, n_fail_ood=0, n_fail_id=30).path
    config = small_config(methods=METHODS, baselines=[], references=[], deploy_method="or_joint", plot_method=None,
                          threshold_types=["constant", "band"], deltas=(0.1,), split={"fit": 0.25, "calibration": 0.35, "validation": 0.5})
    result = evaluate_rollouts(str(path), config).tasks["shifts"]
    for kind in ("constant", "band"):
        assert not result.methods["or_separate"].result(kind).guaranteed
        assert result.methods["and_separate"].result(kind).guaranteed and result.methods["or_joint"].result(kind).guaranteed
    assert guarantees_delta("or", 1, False) and not guarantees_delta("or", 3, False) and guarantees_delta("or", 3, True)
