"""Rollout stores another recorder wrote, with the mistakes such a recorder makes (a key left out, labels as
text, axes swapped, steps counted wrongly, a bad attr), combined at random: the offline evaluation either
evaluates them or stops with a ValueError that names the store or task and what to do, never a bare
KeyError, IndexError, TypeError or a NaN-filled result."""

from __future__ import annotations

import math
import os

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from benchmarks.synthetic_stores import SyntheticTask, synthetic_episode, write_episodes
from fiper.evaluation import evaluate_rollouts, write_outputs
from fiper.evaluation.config import EvaluationConfig

TASK = SyntheticTask(min_decisions=6, max_decisions=9)
CONFIG = EvaluationConfig.from_mapping(dict(
    deltas=[0.2], threshold_types=["constant"], windows=[1, 3], progress=False, plot_method=None, deploy_method="fiper",
    methods={"fiper": {"scores": ["mahalanobis", "ace"], "rule": "and"}, "mahalanobis": {"scores": ["mahalanobis"]},
             "elapsed": {"scores": ["elapsed"], "windows": [1]}, "obs_novelty": {"scores": ["obs_novelty"]}},
    scores={"mahalanobis": {"score": "mahalanobis"}, "ace": {"score": "ace"}, "elapsed": {"score": "elapsed"},
            "obs_novelty": {"score": "obs_novelty"}},
    baselines=[], references=["elapsed", "obs_novelty"]))
# FUZZ_EXAMPLES=<n> and FUZZ_RANDOM=1 explore beyond the suite's fixed examples
SETTINGS = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", 40)), deadline=None,
                    derandomize=os.environ.get("FUZZ_RANDOM") is None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _episodes(seed: int) -> list[tuple[dict, dict, dict]]:
    rng, out = np.random.default_rng(seed), []
    for i in range(48):
        success, ood = i % 3 != 2, i % 4 == 3
        ep = synthetic_episode(TASK, rng, success=success, ood=ood)
        n_steps = len(ep["env_step"]) * TASK.n_action_steps
        data = {"action": rng.normal(size=(n_steps, TASK.action_dim)).astype(np.float32),
                "state": (rng.normal(size=(n_steps, 3)) + (1.0 if ood else 0.0)).astype(np.float32)}
        decisions = {k: ep[k] for k in ("embedding", "samples", "env_step")}
        meta = {"success": success, "failure_step": ep["failure_step"], "shift": "cam" if ood else "none",
                "severity": 0.5 if ood else 0.0, "seed": i}
        out.append((data, decisions, meta))
    return out


def _drop(group: int, key: str):
    def apply(episodes, attrs):
        for ep in episodes:
            ep[group].pop(key, None)
    return apply


def _each(group: int, key: str, change):
    def apply(episodes, attrs):
        for i, ep in enumerate(episodes):
            if key in ep[group]:
                ep[group][key] = change(ep[group][key], i)
    return apply


def _attr(key: str, value):
    def apply(episodes, attrs):
        attrs[key] = value
    return apply


def _nan_embedding(episodes, attrs):
    emb = episodes[5][1].get("embedding")
    if emb is not None and emb.dtype.kind == "f":
        episodes[5][1]["embedding"] = emb.copy()
        episodes[5][1]["embedding"][1, 0] = np.nan


MISTAKES = {
    "no embedding": _drop(1, "embedding"),
    "no samples": _drop(1, "samples"),
    "no env_step": _drop(1, "env_step"),
    "no observations": _drop(0, "state"),
    "no success": _drop(2, "success"),
    "no failure_step": _drop(2, "failure_step"),
    "no shift": _drop(2, "shift"),
    "success as text": _each(2, "success", lambda v, i: str(bool(v))),
    "every episode succeeded": _each(2, "success", lambda v, i: True),
    "shift 'nominal'": _each(2, "shift", lambda v, i: "nominal" if v == "none" else v),
    "embedding (N, D, 1)": _each(1, "embedding", lambda v, i: v[:, :, None]),
    "samples (N, B*H, A)": _each(1, "samples", lambda v, i: v.reshape(v.shape[0], int(np.prod(v.shape[1:-1])), v.shape[-1])),
    "samples (N, B, A, H)": _each(1, "samples", lambda v, i: np.swapaxes(v, -1, -2)),
    "env_step x 100": _each(1, "env_step", lambda v, i: v * 100),
    "env_step reversed": _each(1, "env_step", lambda v, i: v[::-1].copy()),
    "NaN in one embedding": _nan_embedding,
    "severity as text": _each(2, "severity", lambda v, i: f"{v}"),
    "failure_step past the episode": _each(2, "failure_step", lambda v, i: v + 10_000 if v >= 0 else v),
    "no action": _drop(0, "action"),
    "no task attr": lambda episodes, attrs: attrs.pop("task"),
    "an episode without decisions": lambda episodes, attrs: episodes[7][1].update({k: v[:0] for k, v in episodes[7][1].items()}),
    "severity 'high'": _each(2, "severity", lambda v, i: "high" if v else "low"),
    "shift as 0 / 1": _each(2, "shift", lambda v, i: int(v != "none")),
    "failure_reason numbers": lambda episodes, attrs: [ep[2].update(failure_reason=0 if ep[2].get("success", True) else 3) for ep in episodes],
    "seed as text": _each(2, "seed", lambda v, i: f"seed-{v}"),
    "embedding int": _each(1, "embedding", lambda v, i: (np.nan_to_num(v) * 10).astype(np.int32)),
    "samples float64": _each(1, "samples", lambda v, i: v.astype(np.float64)),
    "control_period_s text": _attr("control_period_s", "fast"),
    "control_period_s negative": _attr("control_period_s", -0.1),
    "n_action_steps zero": _attr("n_action_steps", 0),
}

@SETTINGS
@given(chosen=st.lists(st.sampled_from(sorted(MISTAKES)), min_size=1, max_size=3, unique=True), seed=st.integers(0, 3))
def test_a_foreign_store_evaluates_or_stops_naming_the_problem(tmp_path_factory, chosen, seed):
    # the writer needs one per-step and one per-decision array (stores with neither are tested in tests/evaluation)
    assume(not {"no samples", "no embedding", "no env_step"} <= set(chosen) and not {"no observations", "no action"} <= set(chosen))
    episodes = [tuple(dict(part) for part in ep) for ep in _episodes(seed)]
    attrs = {"task": "foreign", "n_action_steps": TASK.n_action_steps, "control_period_s": 0.05}
    for name in chosen:
        MISTAKES[name](episodes, attrs)
    path = tmp_path_factory.mktemp("foreign") / "rollouts.zarr"
    try:
        write_episodes(path, episodes, attrs=attrs)
        result = evaluate_rollouts(str(path), CONFIG)
    except ValueError as err:
        text = str(err)
        assert len(text) > 60 and ("rollouts" in text or "foreign" in text), (chosen, text)
        return
    write_outputs(result, path.parent / "out", plots=False)  # the report renders whatever the store left out
    (task,) = result.tasks.values()
    for method in task.methods.values():
        acc = np.asarray(method.types["constant"].test["accuracy"], dtype=float)
        assert np.all(np.isfinite(acc) | np.isnan(acc)) and not math.isnan(float(np.nanmean(acc))), (chosen, method.spec.name)
