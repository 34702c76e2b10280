"""A 'select' method is the member whose chosen window validates best, per threshold type."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation_helpers import ONE_RUN, small_config
from fiper.evaluation import evaluate_rollouts, write_outputs
from fiper.evaluation.config import EvaluationConfig, MethodSpec
from fiper.evaluation.selection import choose_candidate
from benchmarks.synthetic_stores import write_synthetic_store

METHODS = {"ace": {"scores": ["ace"]}, "mahalanobis": {"scores": ["mahalanobis"]}, "knn": {"scores": ["knn"]},
           "ace_or_knn": {"scores": ["ace", "knn"], "rule": "or", "joint": True, "windows": [1, 5]},
           "best": {"select": ["ace", "knn", "ace_or_knn"]}}


def test_select_reports_the_member_that_validates_best_with_its_test_metrics(tmp_path):
    path = write_synthetic_store(tmp_path / "a.zarr", seed=3, **ONE_RUN).path
    result = evaluate_rollouts(str(path), small_config(methods=METHODS, plot_method="best"))
    task = result.tasks["synthetic"]
    members = METHODS["best"]["select"]
    picked = set()
    for kind, res in task.methods["best"].types.items():
        vals = {c: np.array([task.methods[m].types[kind].validation[c][task.methods[m].types[kind].candidate] for m in members])
                for c in ("accuracy", "twa", "auroc", "accuracy_twa")}
        criterion = result.config.selection
        assert res.selected == members[choose_candidate(vals, criterion)]
        assert vals[criterion][members.index(res.selected)] == vals[criterion].max()
        member = task.methods[res.selected].types[kind]
        assert res.windows == member.windows
        for field in ("accuracy", "twa", "far_id", "tpr"):
            np.testing.assert_array_equal(res.test[field], member.test[field])
        picked.add(res.selected)
    records = [r for r in task.records() if r["method"] == "best"]
    assert all(r["selected"] in members and r["scores"] == list(MethodSpec.of("x", METHODS[r["selected"]]).scores) for r in records)
    assert all(r["selected"] is None for r in task.records() if r["method"] != "best")
    paths = write_outputs(result, tmp_path / "out")  # the select method's traces are drawn from its member
    assert any(f"{m}: " in paths["report"].read_text() for m in picked)
    assert (tmp_path / "out" / "synthetic_traces_band.png").exists()


def test_select_config_errors_name_the_fix():
    with pytest.raises(ValueError, match=r"not configured methods.*'~methods.best'"):
        EvaluationConfig.from_mapping({"methods": {"ace": {"scores": ["ace"]}, "best": {"select": ["ace", "mine"]}},
                                       "plot_method": None})
    # a dropped default method is left out of a select, like baselines and references
    config = EvaluationConfig.from_mapping({"methods": {"ace": {"scores": ["ace"]}, "best": {"select": ["ace", "knn"]}},
                                            "plot_method": None})
    assert config.methods["best"].select == ("ace",)
    with pytest.raises(ValueError, match=r"all of them dropped.*'~methods.best'"):
        EvaluationConfig.from_mapping({"methods": {"ace": {"scores": ["ace"]}, "best": {"select": ["knn"]}}, "plot_method": None})
    with pytest.raises(ValueError, match="keep_first_se must be a number"):
        MethodSpec.of("best", {"select": ["ace"], "keep_first_se": -1})
    with pytest.raises(ValueError, match="only the list of methods"):
        MethodSpec.of("best", {"select": ["ace"], "rule": "or"})
    with pytest.raises(ValueError, match="distinct method names"):
        MethodSpec.of("best", {"select": ["ace", "ace"]})
    with pytest.raises(ValueError, match="not configured methods with scores"):  # a select of a select
        EvaluationConfig.from_mapping({"methods": {"ace": {"scores": ["ace"]}, "a": {"select": ["ace"]}, "b": {"select": ["a"]}}})
    spec = MethodSpec.of("best", {"select": ["ace", "knn"]})
    assert MethodSpec.of("best", spec.as_dict()) == spec
    spec = MethodSpec.of("best", {"select": ["ace", "knn"], "keep_first_se": 1.5})
    assert MethodSpec.of("best", spec.as_dict()) == spec and spec.keep_first_se == 1.5
