"""launch/conf/evaluate.yaml restates the library defaults, and launch.evaluate runs end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from fiper.evaluation import EvaluationConfig
from benchmarks.synthetic_stores import SyntheticTask, write_synthetic_store
from launch.evaluate import LAUNCH_KEYS, run
from launch.common import plain

CONF = Path(__file__).resolve().parents[2] / "launch" / "conf"


def _compose(overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        return compose(config_name="evaluate", overrides=overrides)


def test_yaml_defaults_equal_library_defaults():
    cfg = plain(_compose(["rollouts=x.zarr", "out=o"]))
    settings = {k: v for k, v in cfg.items() if k not in LAUNCH_KEYS}
    assert EvaluationConfig.from_mapping(settings).as_dict() == EvaluationConfig().as_dict()


def test_launch_evaluate_writes_outputs_and_config(tmp_path):
    small = dict(n_success_id=30, n_success_ood=4, n_fail_id=6, n_fail_ood=4)
    write_synthetic_store(tmp_path / "r0.zarr", seed=0, **small)
    write_synthetic_store(tmp_path / "r1.zarr", seed=1, **small)
    write_synthetic_store(tmp_path / "push.zarr", SyntheticTask(name="push", task_seed=4), seed=2, n_success_id=45, n_success_ood=0,
                          n_fail_id=10, n_fail_ood=0)
    drop = [f"~methods.{m}" for m in ("fiper", "fiper_joint", "fiper_or_joint", "fiper_clock_or_joint", "fiper_obs_or_joint", "fiper_rec_or_joint", "fiper_select", "rnd_oe", "stac", "rnd_a", "logpzo", "pca_kmeans", "knn", "elapsed", "obs_novelty", "reconstruction")]
    out = tmp_path / "out"
    cfg = _compose([f"rollouts=[{tmp_path / 'r0.zarr'},{tmp_path / 'r1.zarr'},{tmp_path / 'push.zarr'}]", f"out={out}", "deltas=[0.1,0.2]",
                    "plots=false", "progress=false", "plot_method=ace", *drop])
    result = run(cfg)
    doc = json.loads((out / "metrics.json").read_text())
    assert {r["method"] for r in doc["records"]} == {"ace", "mahalanobis"}
    assert len(doc["records"]) == 2 * 2 * (3 + 1) * 3  # tasks x methods x (threshold types + chosen) x (2 deltas + mean)
    assert doc["tasks"]["synthetic"]["episodes"] == 88 and doc["tasks"]["push"]["episodes"] == 55
    report = (out / "report.md").read_text()
    assert "## Task `synthetic`" in report and "## Task `push`" in report
    # 'push' has no shifted episodes: its success-OOD rates are undefined (null), not zero
    push = [r for r in doc["records"] if r["task"] == "push"]
    assert all(r["success_ood_flag_rate"] is None and r["success_ood_n"] == 0 for r in push)
    assert (out / "evaluate_config.yaml").read_text().count("rollouts:") == 1
    assert (out / "report.md").exists() and not list(out.glob("*.png"))
    assert result.config.deltas == (0.1, 0.2)
    assert result.config.references == ()  # the dropped default references are left out, not an error


def test_references_default_to_the_clock_the_observation_and_the_camera_and_refuse_unknown_or_doubled_names():
    cfg = plain(_compose(["rollouts=x.zarr", "out=o"]))
    assert cfg["references"] == ["elapsed", "obs_novelty", "reconstruction"]
    assert cfg["methods"]["elapsed"] == {"scores": ["elapsed"], "rule": "single", "windows": [1]}
    assert cfg["methods"]["obs_novelty"] == {"scores": ["obs_novelty"], "rule": "single", "windows": None}
    assert cfg["methods"]["reconstruction"] == {"scores": ["reconstruction"], "rule": "single", "windows": None}
    assert EvaluationConfig().references == ("elapsed", "obs_novelty", "reconstruction")
    with pytest.raises(ValueError, match=r"references \['elapsd'\] are not configured methods"):
        EvaluationConfig.from_mapping({"references": ["elapsd"]})
    with pytest.raises(ValueError, match=r"methods \['knn'\] are both baselines and references"):
        EvaluationConfig.from_mapping({"references": ["elapsed", "knn"]})



def test_projected_duration_joins_an_evaluation_as_one_added_method():
    """Not a default method (docs/results.md: it moved no deployed row), but configured as a score, so one line adds it."""
    cfg = plain(_compose(["rollouts=x.zarr", "out=o", "+methods.projected_duration={scores:[projected_duration],rule:single}"]))
    config = EvaluationConfig.from_mapping({k: v for k, v in cfg.items() if k not in LAUNCH_KEYS})
    assert config.methods["projected_duration"].scores == ("projected_duration",)
    assert config.scores["projected_duration"]["k"] == 10
