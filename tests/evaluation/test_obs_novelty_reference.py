"""The raw-observation novelty reference in an offline evaluation: evaluated like every method,
read from the stores' recorded observations (shifted episodes flagged, failures with familiar
observations not), counted among the references, and left out, with a note, on a store without observations."""

from __future__ import annotations

import math

import numpy as np

from benchmarks.synthetic_stores import SyntheticTask, synthetic_episode, write_episodes, write_synthetic_store
from fiper.evaluation import EvaluationConfig, evaluate_rollouts
from fiper.evaluation.render.metrics_json import json_safe

DELTAS = (0.1, 0.2)
TYPES = ("constant", "band")
METHODS = {"knn": {"scores": ["knn"], "windows": [1, 3]}, "elapsed": {"scores": ["elapsed"], "windows": [1]},
           "obs_novelty": {"scores": ["obs_novelty"], "windows": [1, 3]}}


def _config() -> EvaluationConfig:
    return EvaluationConfig.from_mapping(dict(
        deltas=DELTAS, threshold_types=list(TYPES), methods=METHODS, baselines=[], references=["elapsed", "obs_novelty"],
        scores={"knn": {"score": "knn", "k": 3}, "elapsed": {"score": "elapsed"}, "obs_novelty": {"score": "obs_novelty"}},
        deploy_method="knn", plot_method=None, progress=False))


def test_obs_novelty_is_evaluated_as_a_reference_from_the_recorded_observations(tmp_path):
    # the store's 'state' observation is offset by 1.5 in shifted episodes only; failures drift in the embedding
    path = write_synthetic_store(tmp_path / "r.zarr", seed=3, n_success_id=70, n_success_ood=20, n_fail_id=20, n_fail_ood=20).path
    result = evaluate_rollouts(str(path), _config())
    task = result.tasks["synthetic"]
    records = [r for r in json_safe(result.records()) if r["method"] == "obs_novelty"]
    assert {(r["threshold_type"], r["delta"]) for r in records} == {(t, d) for t in (*TYPES, "chosen") for d in (*DELTAS, "mean")}
    test = task.methods["obs_novelty"].result("chosen").test
    assert min(test["success_ood_flag_rate"]) >= 0.9 and min(test["fail_ood_flag_rate"]) >= 0.9  # the observation moved
    assert max(test["fail_id_flag_rate"]) <= 0.4  # failures whose observation stays familiar go unseen
    n = int(test["success_id_n"])
    for delta, far in zip(DELTAS, test["far_id"]):
        assert far <= delta + 3 * math.sqrt(delta * (1 - delta) / n)
    refs = {r.method for r in task.findings.references}
    assert refs == {"elapsed", "obs_novelty"} and task.findings.best_reference.method in refs


def test_a_store_without_observations_leaves_obs_novelty_out_naming_the_fix(tmp_path):
    rng, task = np.random.default_rng(0), SyntheticTask()
    episodes = []
    for i in range(80):
        ep = synthetic_episode(task, rng, success=i < 60, ood=False)
        executed = np.zeros((len(ep["env_step"]) * task.n_action_steps, task.action_dim), np.float32)
        decisions = {k: ep[k] for k in ("embedding", "samples", "env_step")}
        episodes.append(({"action": executed}, decisions, {"success": i < 60, "shift": "none", "failure_step": ep["failure_step"]}))
    path = write_episodes(tmp_path / "bare.zarr", episodes, attrs={"task": "bare", "n_action_steps": task.n_action_steps}).path
    result = evaluate_rollouts(str(path), _config())
    bare = result.tasks["bare"]
    assert list(bare.methods) == ["knn", "elapsed"]
    assert "record no observations (data/<key>)" in bare.left_out and ": obs_novelty;" in bare.left_out
    assert [r.method for r in bare.findings.references] == ["elapsed"]


def test_the_reports_reference_role_says_what_obs_novelty_does(tmp_path):
    from fiper.evaluation import write_outputs

    path = write_synthetic_store(tmp_path / "r.zarr", seed=3, n_success_id=70, n_success_ood=20, n_fail_id=20, n_fail_ood=20).path
    report = write_outputs(evaluate_rollouts(str(path), _config()), tmp_path / "out", plots=False)["report"].read_text()
    bullet = next(line for line in report.splitlines() if line.startswith("- **reference**"))
    assert ("(`elapsed`: alarm once the episode outlasts (1 − δ) of the calibration successes; `obs_novelty`: alarm on a "
            "raw observation far from the fit observations)") in bullet
