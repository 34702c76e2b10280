"""Window selection sees validation only; live scores in a store change nothing; tie-breaking."""

from __future__ import annotations

import numpy as np

from evaluation_helpers import ONE_RUN, small_config
from fiper.evaluation import evaluate_rollouts
from fiper.evaluation.rowview import RowView
from fiper.evaluation.grid import CandidateAlarms
from fiper.evaluation.selection import choose_candidate, criterion_values
from benchmarks.synthetic_stores import SyntheticTask, synthetic_episode, write_synthetic_store
from fiper.storage import EpisodeStore

FAST_METHODS = {"ace": {"scores": ["ace"]}, "mahalanobis": {"scores": ["mahalanobis"]},
                "ace_and_knn": {"scores": ["ace", "knn"], "rule": "and", "windows": [1, 5, "episode"]},
                "pick": {"select": ["ace", "ace_and_knn"]}}


def _chosen(result):
    task = next(iter(result.tasks.values()))
    return {(m, k): (r.windows, r.selected, {c: v.tolist() for c, v in r.validation.items()}) for m, meth in task.methods.items() for k, r in meth.types.items()}


def test_changing_test_episodes_does_not_change_chosen_windows(tmp_path):
    config = small_config(methods=FAST_METHODS, plot_method=None)
    path = write_synthetic_store(tmp_path / "a.zarr", seed=5, **ONE_RUN).path
    before = evaluate_rollouts(str(path), config)
    task = before.tasks["synthetic"]
    ro, test = task.rollouts, task.split.test
    # Swap the content of every test episode: failures now look like successes and vice versa.
    rng = np.random.default_rng(99)
    replace = {}
    for i in test:
        ep = synthetic_episode(SyntheticTask(), rng, success=not ro.success[i], ood=bool(ro.ood[i]), n_decisions=int(ro.lengths[i]))
        replace[int(i)] = {"embedding": ep["embedding"], "samples": ep["samples"]}
    altered = write_synthetic_store(tmp_path / "b.zarr", seed=5, replace=replace, **ONE_RUN).path
    after = evaluate_rollouts(str(altered), config)
    assert np.array_equal(after.tasks["synthetic"].split.test, test)
    assert _chosen(after) == _chosen(before)  # windows and every validation criterion value
    # ... while the test metrics did change (the test episodes really are different)
    tpr = lambda res: np.mean(res.tasks["synthetic"].methods["ace"].types["constant"].test["tpr"])
    assert tpr(before) > 0.8 and tpr(after) < 0.5


def test_live_scores_in_the_store_do_not_change_the_evaluation(tmp_path):
    config = small_config(methods={"fiper": {"scores": ["rnd_oe", "ace"]}, "stac": {"scores": ["stac"], "windows": ["episode"]}})
    plain = write_synthetic_store(tmp_path / "plain.zarr", seed=7, **ONE_RUN).path
    live = write_synthetic_store(tmp_path / "live.zarr", seed=7, live_scores=True, **ONE_RUN).path
    a, b = evaluate_rollouts(str(plain), config), evaluate_rollouts(str(live), config)
    assert "score/rnd_oe" in EpisodeStore.open(live).decision_keys
    ra, rb = a.records(), b.records()
    assert len(ra) == len(rb) == 2 * (3 + 1) * 4  # methods x (threshold types + chosen) x (3 deltas + mean)
    assert ra == rb


def test_lazily_read_samples_evaluate_identically(tmp_path, monkeypatch):
    """Stores too large for memory are read in row slices (RowView); the numbers do not change."""
    config = small_config(methods={"ace": {"scores": ["ace"]}, "stac": {"scores": ["stac"], "windows": ["episode"]}}, plot_method=None)
    path = str(write_synthetic_store(tmp_path / "r.zarr", seed=3, **ONE_RUN).path)
    in_memory = evaluate_rollouts(path, config)
    monkeypatch.setattr("fiper.evaluation.rowview.IN_MEMORY_BYTES", 0)
    lazy = evaluate_rollouts(path, config)
    assert isinstance(lazy.tasks["synthetic"].rollouts.samples, RowView)
    assert isinstance(in_memory.tasks["synthetic"].rollouts.samples, np.ndarray)
    assert lazy.records() == in_memory.records()


def test_choose_candidate_breaks_ties_by_twa_then_order():
    values = {"accuracy": np.array([0.7, 0.8, 0.8, np.nan]), "twa": np.array([0.9, 0.5, 0.6, 1.0]), "auroc": np.zeros(4)}
    assert choose_candidate(values, "accuracy") == 2  # tie on accuracy -> higher TWA
    assert choose_candidate(values, "twa") == 3
    values["twa"][2] = 0.5
    assert choose_candidate(values, "accuracy") == 1  # full tie -> earlier candidate
    assert choose_candidate({"accuracy": np.full(3, np.nan), "twa": np.full(3, np.nan)}, "accuracy") == 0


def test_accuracy_twa_criterion_trades_how_many_failures_for_how_early():
    """10 failures, 10 successes, 10 decisions each (DT = decision / 9). Late-but-complete wins
    accuracy, early-but-incomplete wins TWA, and their mean picks the candidate good at both."""
    late = [9] * 10 + [-1] * 10                        # Acc 1.00, TWA 0.50
    both = [0] * 7 + [9] * 3 + [0] + [-1] * 9          # Acc 0.95, TWA 0.80 (one false alarm)
    early = [0] * 7 + [-1] * 3 + [-1] * 10             # Acc 0.85, TWA 0.85
    first = np.array([late, both, early])[:, None, :]
    alarms = CandidateAlarms(candidates=[(0,), (1,), (2,)], first_alarm=first, max_ratio=np.zeros(first.shape))
    values = criterion_values(alarms, np.array([True] * 10 + [False] * 10), np.full(20, 10), max_decisions=10)
    np.testing.assert_allclose(values["accuracy"], [1.0, 0.95, 0.85])
    np.testing.assert_allclose(values["twa"], [0.5, 0.8, 0.85])
    np.testing.assert_allclose(values["accuracy_twa"], [0.75, 0.875, 0.85])
    assert [choose_candidate(values, c) for c in ("accuracy", "twa", "accuracy_twa")] == [0, 2, 1]
