"""Each method's guaranteed threshold type is chosen on validation, like its window: the 'chosen' row."""

from __future__ import annotations

import numpy as np

from evaluation_helpers import ONE_RUN, small_config
from fiper.evaluation import evaluate_rollouts, write_outputs
from fiper.evaluation.config import MethodSpec
from fiper.evaluation.engine import MethodResult, TypeResult, choose_threshold_type
from fiper.evaluation.selection import choose_candidate
from benchmarks.synthetic_stores import write_synthetic_store

METHODS = {"ace": {"scores": ["ace"]}, "mahalanobis": {"scores": ["mahalanobis"]}, "knn": {"scores": ["knn"]},
           "best": {"select": ["ace", "knn"]}}


def _result(kind: str, guaranteed: bool, accuracy: float, twa: float) -> TypeResult:
    """A TypeResult whose chosen candidate (index 1) validates at ``accuracy`` / ``twa``."""
    values = {"accuracy": np.array([0.0, accuracy]), "twa": np.array([0.0, twa]), "auroc": np.array([0.5, 0.5])}
    values["accuracy_twa"] = 0.5 * (values["accuracy"] + values["twa"])
    return TypeResult(kind, guaranteed, [(0,), (1,)], values, 1, {"s": 1}, {"s": 1}, {}, None)


def test_only_guaranteed_types_are_chosen_by_the_validation_criterion():
    spec = MethodSpec.of("m", {"scores": ["s"]})
    types = {"constant": _result("constant", True, 0.80, 0.50), "band": _result("band", True, 0.78, 0.70),
             "time_varying": _result("time_varying", False, 0.95, 0.90)}  # validates best, but has no guarantee
    method = MethodResult(spec, types)
    assert choose_threshold_type(method, "accuracy").threshold_type == "constant"
    assert choose_threshold_type(method, "twa").threshold_type == "band"
    assert choose_threshold_type(method, "accuracy_twa").threshold_type == "band"  # 0.74 > 0.65
    tie = MethodResult(spec, {"constant": _result("constant", True, 0.8, 0.6), "band": _result("band", True, 0.8, 0.6)})
    assert choose_threshold_type(tie, "accuracy").threshold_type == "constant"  # ties: configuration order
    assert choose_threshold_type(MethodResult(spec, {k: types[k] for k in ("band", "time_varying")}), "accuracy") is None
    method = MethodResult(spec, types, choose_threshold_type(method, "accuracy"))  # results are immutable: built whole
    assert [k for k, _ in method.results()] == ["constant", "band", "time_varying", "chosen"]
    assert method.result("chosen") is types["constant"]


def test_chosen_row_repeats_the_validated_types_test_metrics_in_records_and_report(tmp_path):
    path = write_synthetic_store(tmp_path / "a.zarr", seed=3, **ONE_RUN).path
    result = evaluate_rollouts(str(path), small_config(methods=METHODS, plot_method="best"))
    task = result.tasks["synthetic"]
    for name, method in task.methods.items():
        options = [method.types[k] for k in ("constant", "band")]
        values = {c: np.array([r.validation[c][r.candidate] for r in options]) for c in options[0].validation}
        expected = options[choose_candidate(values, result.config.selection)]
        assert method.chosen is expected  # the validation choice, whatever test says
        records = [r for r in task.records() if r["method"] == name and r["threshold_type"] == "chosen"]
        twin = [r for r in task.records() if r["method"] == name and r["threshold_type"] == expected.threshold_type]
        assert len(records) == len(twin) == 4 and all(r["chosen_type"] == expected.threshold_type and r["guaranteed"] for r in records)
        strip = lambda r: {k: v for k, v in r.items() if k not in ("threshold_type", "chosen_type")}
        assert [strip(r) for r in records] == [strip(r) for r in twin]
    report = write_outputs(result, tmp_path / "out", plots=False)["report"].read_text()
    assert "chosen guaranteed type" in report and "with each method's guaranteed type chosen on validation" in report
    # the full grid marks the chosen type instead of repeating its row (metrics.json keeps the 'chosen' records)
    chosen = task.methods["best"].chosen.threshold_type
    assert f"| best | {chosen} | yes | ✓ |" in report and "| best | chosen" not in report


def test_a_single_guaranteed_type_gives_no_chosen_row(tmp_path):
    path = write_synthetic_store(tmp_path / "a.zarr", seed=3, **ONE_RUN).path
    config = small_config(methods={"ace": {"scores": ["ace"]}}, threshold_types=["band", "time_varying"], plot_method=None)
    result = evaluate_rollouts(str(path), config)
    assert result.tasks["synthetic"].methods["ace"].chosen is None
    assert {r["threshold_type"] for r in result.records()} == {"band", "time_varying"}
    report = write_outputs(result, tmp_path / "out", plots=False)["report"].read_text()
    assert "chosen on validation (no test-set choice)" not in report
