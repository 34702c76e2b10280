"""The camera reference in an offline evaluation: on stores that record a camera image, reconstruction is fitted,
evaluated and counted among the references, and flags shifted episodes whose image shows what the fit images never
did; on stores without a camera image it is left out with a note saying why, not an error."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.synthetic_stores import SyntheticTask, synthetic_episode, write_episodes
from fiper.evaluation import EvaluationConfig, evaluate_rollouts
from fiper.evaluation.store_checks import RolloutError

DELTAS = (0.1, 0.2)
SCORES = {"knn": {"score": "knn", "k": 3}, "elapsed": {"score": "elapsed"},
          "reconstruction": {"score": "reconstruction", "image_size": 16, "widths": [8, 8], "latent": 8,
                             "train": {"lr": 3e-3, "max_epochs": 60, "patience": 10}}}


def _config(references=("elapsed", "reconstruction")) -> EvaluationConfig:
    methods = {"knn": {"scores": ["knn"], "windows": [1]}, "elapsed": {"scores": ["elapsed"], "windows": [1]},
               "reconstruction": {"scores": ["reconstruction"], "windows": [1, "episode"]}}
    return EvaluationConfig.from_mapping(dict(
        deltas=DELTAS, threshold_types=["constant"], methods=methods, baselines=[], references=list(references),
        scores=SCORES, deploy_method="knn", plot_method=None, progress=False))


def _frames(rng: np.random.Generator, steps: int, block: bool) -> np.ndarray:
    """A table seen from above: a red cube somewhere, a dark gripper moving to it; ``block``: a dark block in a corner."""
    cube, hand = rng.integers(4, 18, size=2), rng.integers(4, 18, size=2).astype(float)
    out = np.full((steps, 32, 32, 3), 200, np.uint8)
    for t in range(steps):
        out[t, cube[0]:cube[0] + 5, cube[1]:cube[1] + 5] = (200, 30, 30)
        y, x = (hand + (cube - hand) * t / max(1, steps - 1)).astype(int)
        out[t, y:y + 6, x:x + 6] = 60
        if block:
            out[t, 24:31, 24:31] = 60
    return out


def _store(path, *, camera: bool, placed: bool = True):
    rng, task = np.random.default_rng(0), SyntheticTask()
    episodes = []
    for i in range(120):
        success, ood = i < 100 or i >= 110, i >= 100
        ep = synthetic_episode(task, rng, success=success, ood=ood)
        steps = len(ep["env_step"]) * task.n_action_steps
        data = {"action": np.zeros((steps, task.action_dim), np.float32), "state": rng.normal(size=(steps, 2)).astype(np.float32)}
        if camera:
            data["image"] = _frames(rng, steps, block=ood)
        decisions = {k: ep[k] for k in ("embedding", "samples", "env_step")[:3 if placed else 2]}
        meta = {"success": success, "shift": "obstacle" if ood else "none", "failure_step": ep["failure_step"]}
        episodes.append((data, decisions, meta))
    attrs = {"task": "camera" if camera else "lowdim", **({"n_action_steps": task.n_action_steps} if placed else {})}
    return write_episodes(path, episodes, attrs=attrs).path


def test_reconstruction_is_a_reference_on_stores_with_a_camera(tmp_path):
    result = evaluate_rollouts(str(_store(tmp_path / "camera.zarr", camera=True)), _config())
    task = result.tasks["camera"]
    assert list(task.methods) == ["knn", "elapsed", "reconstruction"] and not task.left_out
    test = task.methods["reconstruction"].result("constant").test
    assert min(test["success_ood_flag_rate"]) >= 0.9 and min(test["fail_ood_flag_rate"]) >= 0.9  # the block is seen
    n = int(test["success_id_n"])
    for delta, far in zip(DELTAS, test["far_id"]):
        assert far <= delta + 3 * math.sqrt(delta * (1 - delta) / n)
    assert {r.method for r in task.findings.references} == {"elapsed", "reconstruction"}


def test_stores_without_a_camera_leave_it_out_saying_why(tmp_path):
    result = evaluate_rollouts(str(_store(tmp_path / "lowdim.zarr", camera=False)), _config())
    task = result.tasks["lowdim"]
    assert list(task.methods) == ["knn", "elapsed"]
    assert task.left_out == ("its stores record no camera image (data/<key> whose steps have height and width of at least 16 "
                             "pixels, with no channel axis or one of at most 4 first or last), "
                             "so reconstruction (reading one) is left out")
    assert [r.method for r in task.findings.references] == ["elapsed"]


def test_a_camera_the_decisions_cannot_be_placed_in_is_named_as_such(tmp_path):
    """Images recorded without decisions/env_step or n_action_steps: the cause is named, not 'no camera image'."""
    path = _store(tmp_path / "camera.zarr", camera=True, placed=False)
    with pytest.raises(RolloutError, match=r"reconstruction reads what its stores cannot place: camera.zarr record\(s\) no "
                                           r"decisions/env_step.*or leave it out \('~methods.reconstruction'\)"):
        evaluate_rollouts(str(path), _config(references=["elapsed"]))  # configured on purpose (its own windows): refused


def test_the_default_select_gets_its_camera_member_where_the_stores_record_a_camera(tmp_path):
    """Under the default methods a camera task's fiper_select chooses among all seven members, the camera OR among
    them, and the camera methods are evaluated; a low-dim task's select keeps the six others (tests/evaluation/test_outputs.py)."""
    from evaluation_helpers import small_config

    cfg = small_config(scores={**small_config().scores, "reconstruction": SCORES["reconstruction"]},
                       threshold_types=["constant"], windows=[1, 3])
    task = evaluate_rollouts(str(_store(tmp_path / "camera.zarr", camera=True)), cfg).tasks["camera"]
    assert not task.left_out
    assert task.methods["fiper_select"].spec.select[-1] == "fiper_rec_or_joint" and len(task.methods["fiper_select"].spec.select) == 7
    assert {"reconstruction", "fiper_rec_or_joint"} <= set(task.methods)
    assert task.methods["fiper_rec_or_joint"].result("constant").test["accuracy"] is not None
