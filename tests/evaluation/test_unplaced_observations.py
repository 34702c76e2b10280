"""A store with observations but neither decisions/env_step nor an n_action_steps attr: the default methods reading
the observation are left out with a note naming why and the fix; one named on purpose (in methods, references or
deploy_method) stops the evaluation."""

from __future__ import annotations

import re

import numpy as np
import pytest

from benchmarks.synthetic_stores import SyntheticTask, synthetic_episode, write_episodes
from fiper.evaluation import EvaluationConfig, RolloutError, evaluate_rollouts, load_rollouts
from fiper.evaluation.config import DEFAULT_METHODS
from fiper.evaluation.runnable import runnable_config

WHY = "no_steps.zarr record(s) no decisions/env_step and no n_action_steps attr"
FIX = "record decisions/env_step, or set the attr (EpisodeStore.open(path, mode='a').set_attrs(n_action_steps="
SCORES = {"knn": {"score": "knn", "k": 3}, "elapsed": {"score": "elapsed"}, "obs_novelty": {"score": "obs_novelty"}}


def _store(path, attrs=None):
    """70 episodes (50 successes) with a 'state' observation per env step, one env step per decision, no env_step."""
    rng, task = np.random.default_rng(0), SyntheticTask()
    episodes = []
    for i in range(70):
        ep = synthetic_episode(task, rng, success=i < 50, ood=False)
        n = len(ep["env_step"])
        data = {"action": np.zeros((n, 2), np.float32), "state": rng.normal(size=(n, 4)).astype(np.float32)}
        episodes.append((data, {"embedding": ep["embedding"]},
                         {"success": i < 50, "shift": "none", "failure_step": ep["failure_step"] // task.n_action_steps}))
    return write_episodes(path, episodes, attrs={"task": "no_steps", "control_period_s": 0.1, **(attrs or {})}).path


def _config(**methods):
    return EvaluationConfig.from_mapping(dict(
        deltas=(0.1, 0.2), threshold_types=["constant"], windows=[1, 3], baselines=[], references=["elapsed", "obs_novelty"],
        methods={n: DEFAULT_METHODS[n] for n in ("knn", "elapsed", "obs_novelty")} | methods, scores=SCORES,
        deploy_method="knn", plot_method=None, progress=False))


def test_default_methods_reading_the_observation_are_left_out_naming_why_and_the_fix(tmp_path):
    path = _store(tmp_path / "no_steps.zarr")
    rollouts = load_rollouts(str(path))["no_steps"]
    assert rollouts.observation_keys == ("state",) and rollouts.recorded == {"embedding"}
    assert rollouts.env_step[:3].tolist() == [0, 1, 2]  # labels read as one env step per decision, noted
    assert any("no decisions/env_step; assumed 1 env step(s) per decision" in n for n in rollouts.notes)
    task = evaluate_rollouts(str(path), _config()).tasks["no_steps"]
    assert list(task.methods) == ["knn", "elapsed"]
    assert task.left_out == f"1 method(s) reading the observation are left out: obs_novelty, since {WHY}, so which observation " \
                            f"each decision saw is unknown: {FIX}<env steps per decision>)) to evaluate them"
    assert [r.method for r in task.findings.references] == ["elapsed"]
    assert task.methods["knn"].result("constant").test["accuracy"] is not None


def test_the_default_config_keeps_every_method_that_reads_no_observation():
    config = EvaluationConfig()
    narrowed, note = runnable_config(config, {"embedding", "samples"}, "t", {"observation": "why; fix"})
    assert sorted(set(config.methods) - set(narrowed.methods)) == ["fiper_obs_or_joint", "fiper_rec_or_joint", "obs_novelty",
                                                                   "reconstruction"]
    assert narrowed.references == ("elapsed",) and narrowed.deploy_method == "fiper_select"
    assert {"fiper_obs_or_joint", "fiper_rec_or_joint"}.isdisjoint(narrowed.methods["fiper_select"].select)
    assert len(narrowed.methods["fiper_select"].select) == len(config.methods["fiper_select"].select) - 2
    assert "2 method(s) reading the observation are left out: fiper_obs_or_joint, obs_novelty, since why; fix" in note


def test_a_method_configured_on_purpose_is_refused_with_the_fix(tmp_path):
    path = _store(tmp_path / "no_steps.zarr")
    mine = {"obs_or_knn": {"scores": ["obs_novelty", "knn"], "rule": "or"}}
    with pytest.raises(RolloutError, match=rf"task .no_steps.: obs_or_knn reads what its stores cannot place: {re.escape(WHY)}.*"
                                           rf"set_attrs\(n_action_steps=.*or leave it out \('~methods.obs_or_knn'\)"):
        evaluate_rollouts(str(path), _config(**mine))
    changed = {"obs_novelty": {"scores": ["obs_novelty"], "rule": "single", "windows": [1]}}  # a default, configured otherwise
    with pytest.raises(RolloutError, match=r"obs_novelty reads what its stores cannot place"):
        evaluate_rollouts(str(path), _config(**changed))


def test_the_attr_the_note_names_lets_the_observation_be_read(tmp_path):
    rollouts = load_rollouts(str(_store(tmp_path / "no_steps.zarr", {"n_action_steps": 1})))["no_steps"]
    assert rollouts.recorded == {"embedding", "observation"} and rollouts.unreadable == {}


def test_obs_novelty_named_in_references_or_deploy_method_is_asked_for(tmp_path):
    """Named on purpose in references or deploy_method, the default obs_novelty is refused like one configured in
    methods, the message naming each override that leaves it out; named only by the defaults, it is left out."""
    from fiper.evaluation.runnable import asked_by

    assert asked_by(_config(), "obs_novelty") == ()  # the default references, whatever their order
    assert asked_by(EvaluationConfig(), "obs_novelty") == ()
    path = _store(tmp_path / "no_steps.zarr")
    only = _config().as_dict() | {"references": ["obs_novelty"]}
    assert asked_by(EvaluationConfig.from_mapping(only), "obs_novelty") == ("references",)
    with pytest.raises(RolloutError, match=rf"task .no_steps.: obs_novelty \(named in references\) reads what its stores cannot "
                                           rf"place: {re.escape(WHY)}.*or leave it out \(references=\[\]\)$"):
        evaluate_rollouts(str(path), EvaluationConfig.from_mapping(only))
    deployed = _config().as_dict() | {"deploy_method": "obs_novelty", "references": ["elapsed"]}
    with pytest.raises(RolloutError, match=r"obs_novelty \(named in deploy_method\) reads .*or leave it out "
                                           r"\(deploy_method=<another method, or null>\)$"):
        evaluate_rollouts(str(path), EvaluationConfig.from_mapping(deployed))
    everywhere = _config(obs_novelty={"scores": ["obs_novelty"], "rule": "single", "windows": [1]}).as_dict() | {
        "deploy_method": "obs_novelty", "references": ["obs_novelty"]}
    with pytest.raises(RolloutError, match=r"obs_novelty \(named in methods and references and deploy_method\) reads .*"
                                           r"or leave it out \('~methods.obs_novelty', references=\[\], deploy_method="):
        evaluate_rollouts(str(path), EvaluationConfig.from_mapping(everywhere))


def test_left_out_of_references_as_the_refusal_says_obs_novelty_is_left_out_with_the_note(tmp_path):
    path = _store(tmp_path / "no_steps.zarr")
    fixed = _config().as_dict() | {"references": ["elapsed"]}  # the override the refusal of references=[obs_novelty, elapsed] names
    task = evaluate_rollouts(str(path), EvaluationConfig.from_mapping(fixed)).tasks["no_steps"]
    assert list(task.methods) == ["knn", "elapsed"] and task.left_out.startswith("1 method(s) reading the observation are left out")
