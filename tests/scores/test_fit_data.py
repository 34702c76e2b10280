"""ScoreFitData reads the decisions of (some) episodes straight from an EpisodeStore."""

from __future__ import annotations

import numpy as np

from fiper.scores import ScoreFitData, make_score
from fiper.storage import EpisodeStore


def test_from_store_reads_selected_episodes_and_scores_them(tmp_path):
    g = np.random.default_rng(0)
    store = EpisodeStore.create(tmp_path / "rollouts.zarr")
    episodes = []
    for n_dec in (4, 6, 3):
        emb = g.normal(size=(n_dec, 5)).astype(np.float32)
        smp = g.normal(size=(n_dec, 8, 4, 2)).astype(np.float16)  # float16 samples are allowed in stores
        store.append_episode({"action": np.zeros((n_dec * 2, 2))}, decisions={"embedding": emb, "samples": smp}, meta={"success": True})
        episodes.append((emb, smp))
    data = ScoreFitData.from_store(store, episodes=[0, 2])
    np.testing.assert_array_equal(data.decision_ends, [4, 7])
    np.testing.assert_array_equal(data.embeddings, np.concatenate([episodes[0][0], episodes[2][0]]))
    np.testing.assert_array_equal(data.samples, np.concatenate([episodes[0][1], episodes[2][1]]))
    everything = ScoreFitData.from_store(store, samples=False)
    assert everything.samples is None and everything.n_decisions == 13

    ace = make_score("ace").fit(data)
    offline = ace.score_offline(None, store.read_decisions("samples"), store.decision_ends)
    assert offline.shape == (13,) and np.all((offline >= 0) & (offline <= 3))


def test_from_store_of_every_episode_warns_when_some_failed_or_shifted(tmp_path):
    """A score fitted on failures learns them as normal: reading a labelled store whole says so, naming the selection."""
    import warnings

    import pytest

    store = EpisodeStore.create(tmp_path / "rollouts.zarr")
    for success, shift in ((True, "none"), (False, "none"), (True, "push")):
        store.append_episode({"action": np.zeros((4, 2))}, decisions={"embedding": np.zeros((2, 5), np.float32)},
                             meta={"success": success, "shift": shift})
    with pytest.warns(UserWarning, match=r"ScoreFitData.from_store read all 3 episodes .* 1 failed and 1 shifted .*"
                                         r"episodes=successful_in_distribution\(store\)"):
        ScoreFitData.from_store(store, samples=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ScoreFitData.from_store(store, episodes=[0], samples=False)  # a selection: no warning
