"""Fitting and offline scoring stream the sample batches from the store and give the numbers of the
whole-store computation: same raw scores, same fitted constants, same refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import zarr
from evaluation_helpers import TINY_SCORES

from benchmarks.synthetic_stores import SyntheticTask, write_synthetic_store
from fiper.evaluation import rowview
from fiper.evaluation.rollouts import load_rollouts
from fiper.evaluation.scoring import episode_blocks, episode_rows, fit_and_score, resolve_specs
from fiper.evaluation.splits import split_episodes
from fiper.monitor.decision_data import load_decisions, successful_in_distribution
from fiper.monitor.fitting import fit_monitor
from fiper.monitor.identity import PolicyIdentity
from fiper.nn import fit_standardizer
from fiper.scores import ACE, RNDA, STAC, ScoreFitData, make_score
from fiper.scores import inputs
from fiper.scores.inputs import RowSubset
from fiper.scores.training import TrainConfig, episode_split
from fiper.storage import DamagedStoreError, EpisodeStore

TASK = SyntheticTask(embedding_dim=8, num_samples=16, horizon=6, action_dim=2, n_action_steps=2)


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("streaming") / "r.zarr"
    write_synthetic_store(path, TASK, seed=4, n_success_id=24, n_success_ood=4, n_fail_id=5, n_fail_ood=5)
    return str(path)


def test_streamed_fit_and_score_equal_each_score_fitted_and_scored_on_whole_arrays(store_path, monkeypatch):
    """Lazy samples, blocks of a few episodes and read-ahead blocks of 3 decisions: every raw score
    equals fitting on the fit decisions in memory and scoring the whole store in one call, to the
    round-off of matmuls over other row counts: float32's for the float32 scores; for the float64
    ones 1e-12 relative, and 1e-6 absolute where a distance is near zero (a fit decision's k-NN distance
    to itself, sqrt of ‖q‖² + ‖r‖² − 2 q·r, reads 0 or ~1e-7 as the BLAS kernel changes with the row count)."""
    ro = load_rollouts(store_path)["synthetic"]
    split = split_episodes(ro.success, ro.ood, seed=0)
    specs = resolve_specs(TINY_SCORES, list(TINY_SCORES), ro)
    samples, embeddings = np.asarray(ro.samples), ro.embeddings
    rows, fit_ends = episode_rows(ro.decision_ends, split.fit)
    reference = {}
    for name, spec in specs.items():
        params = dict(spec)
        score = make_score(params.pop("score"), **params)
        if "observation" in score.needs:
            continue  # reads data/<key>, not the decisions: tests/scores/test_obs_novelty.py
        score.fit(ScoreFitData(embeddings[rows], samples[rows], fit_ends, seed=0))
        reference[name] = score.score_offline(embeddings, samples, ro.decision_ends)

    row_bytes = int(np.prod(samples.shape[1:])) * samples.dtype.itemsize
    monkeypatch.setattr(rowview, "IN_MEMORY_BYTES", 0)
    monkeypatch.setattr(inputs, "READ_BLOCK_BYTES", 3 * row_bytes)
    lazy = load_rollouts(store_path)["synthetic"]
    assert isinstance(lazy.samples, rowview.RowView)
    assert len(list(episode_blocks(lazy.decision_ends, row_bytes))) > lazy.n_episodes // 2  # many blocks
    streamed = fit_and_score(lazy, split.fit, {n: specs[n] for n in reference}, seed=0)
    assert set(streamed.raw) == set(reference) and {"ace", "stac", "rnd_a"} <= set(reference)
    for name, raw in reference.items():
        if streamed.fitted[name].dtype == torch.float64:
            np.testing.assert_allclose(streamed.raw[name], raw, rtol=1e-12, atol=1e-6, err_msg=name)
        else:
            np.testing.assert_allclose(streamed.raw[name], raw, rtol=1e-6, atol=0, err_msg=name)


def test_ace_fits_the_ranges_of_the_whole_fit_set_from_chunks(monkeypatch):
    g = np.random.default_rng(0)
    samples = (g.normal(size=(40, 16, 6, 3)) * g.uniform(0.1, 3, size=(40, 1, 1, 3))).astype(np.float32)
    ends = np.array([10, 25, 40])
    monkeypatch.setattr(ACE, "kernel_chunk_points", 16 * 6 * 2 * 3)  # 3 decisions per chunk
    monkeypatch.setattr(ACE, "chunk_points", 16 * 6 * 2 * 3)
    for integrate in (False, True):
        ace = ACE(dims=[0, 2], integrate=integrate)
        ace.fit(ScoreFitData(None, samples, ends))
        assert ace._chunk_rows() == 3
        pts = ace.points(samples)  # the whole fit set at once
        np.testing.assert_array_equal(ace.ranges.numpy(), pts.max(axis=(0, 2, 3)) - pts.min(axis=(0, 2, 3)))


def test_rnd_a_streamed_moments_and_picks_equal_the_whole_fit_sets(monkeypatch):
    """RND-A standardises actions with moments merged over chunks (float64) and draws its samples per
    decision chunk by chunk: the moments agree with fit_standardizer on all rows to float32
    round-off, the draws are those of one (n, B) draw, and the scores agree to 1e-5."""
    g = np.random.default_rng(1)
    n, b = 60, 16
    samples = (g.normal(size=(n, b, 5, 2)) * [1.0, 40.0] + [0.0, 300.0]).astype(np.float32)
    emb = g.normal(size=(n, 6)).astype(np.float32)
    ends = np.array([12, 30, 41, 60])
    params = dict(target_widths=[8], predictor_widths=[8, 8], out_dim=4, samples_per_decision=3, train=dict(max_epochs=2, batch_size=32))
    whole = RNDA(**params).fit(ScoreFitData(emb, samples, ends, seed=3))
    monkeypatch.setattr(RNDA, "chunk_elements", 7 * b * 5 * 2)  # 7 decisions per chunk
    chunked = RNDA(**params).fit(ScoreFitData(emb, samples, ends, seed=3))
    tr, _ = episode_split(ends, TrainConfig.of(chunked.config["train"]).val_fraction, 3)
    mean, std = fit_standardizer(torch.from_numpy(samples[tr]).reshape(len(tr) * b, -1))
    for fitted in (whole, chunked):
        torch.testing.assert_close(fitted.act_mean, mean, rtol=1e-6, atol=1e-4)
        torch.testing.assert_close(fitted.act_std, std, rtol=1e-6, atol=1e-6)
    one = torch.rand(n, b, generator=torch.Generator().manual_seed(3))
    gen = torch.Generator().manual_seed(3)
    assert torch.equal(torch.cat([torch.rand(k, b, generator=gen) for k in (7, 7, 7, 7, 7, 7, 7, 7, 4)]), one)
    np.testing.assert_allclose(chunked.score_offline(emb, samples, ends), whole.score_offline(emb, samples, ends), rtol=1e-5)


@pytest.mark.parametrize("kind", ["ace", "stac", "rnd_a"])
def test_a_non_finite_fit_sample_in_a_late_chunk_is_refused_naming_the_decisions(kind, monkeypatch):
    g = np.random.default_rng(2)
    samples = g.normal(size=(30, 8, 4, 2)).astype(np.float32)
    samples[27, 3, 1, 0] = np.nan
    emb = g.normal(size=(30, 4)).astype(np.float32)
    for cls in (ACE, STAC, RNDA):
        monkeypatch.setattr(cls, "chunk_elements", 5 * 8 * 4 * 2)
    monkeypatch.setattr(ACE, "kernel_chunk_points", 5 * 8 * 4 * 2)
    params = {"stac": dict(n_action_steps=2), "rnd_a": dict(target_widths=[4], predictor_widths=[4, 4], out_dim=2)}.get(kind, {})
    score = make_score(kind, **params)
    with pytest.raises(ValueError, match=r"fit samples .* non-finite .*decisions 25\.\.29 of the 30 fit decisions"):
        score.fit(ScoreFitData(emb, samples, np.array([10, 30])))
    assert not score.fitted


def test_row_subset_reads_rows_of_a_zarr_array_like_numpy_indexing(tmp_path):
    g = np.random.default_rng(3)
    values = g.normal(size=(50, 4, 3)).astype(np.float16)
    arr = zarr.open_array(str(tmp_path / "a.zarr"), mode="w", shape=values.shape, chunks=(7, 4, 3), dtype=values.dtype, zarr_format=2)
    arr[:] = values
    rows = np.concatenate([np.arange(30, 41), np.arange(3, 9), [45], np.arange(12, 20)])
    view = RowSubset(arr, rows, block_bytes=5 * 4 * 3 * 2)  # read-ahead blocks of 5 rows
    assert view.shape == (len(rows), 4, 3) and view.dtype == np.float16 and len(view) == len(rows)
    np.testing.assert_array_equal(np.asarray(view), values[rows])
    walked = np.concatenate([view[i : i + 2] for i in range(0, len(rows), 2)])  # small sequential slices
    np.testing.assert_array_equal(walked, values[rows])
    np.testing.assert_array_equal(view[3:19], values[rows[3:19]])  # larger than a block: read directly
    np.testing.assert_array_equal(view[np.array([5, 0, 25])], values[rows[[5, 0, 25]]])
    chunk = view[0:2]
    chunk[:] = 0  # a caller writing into what it read leaves the view intact
    np.testing.assert_array_equal(view[0:2], values[rows[:2]])
    with pytest.raises(IndexError, match="step 1"):
        view[::2]
    with pytest.raises(IndexError, match=r"outside \[0, 50\)"):
        RowSubset(arr, [3, 50])


def test_row_subset_gives_one_row_for_an_integer_as_numpy_does(tmp_path):
    """load_decisions' samples are a RowSubset: stepping a monitor through them reads data.samples[i]."""
    values = np.random.default_rng(4).normal(size=(20, 4, 3)).astype(np.float16)
    view = RowSubset(values, np.arange(5, 15))
    np.testing.assert_array_equal(view[0], values[5])
    np.testing.assert_array_equal(view[np.int64(3)], values[8])
    np.testing.assert_array_equal(view[-1], values[14])
    with pytest.raises(IndexError, match="row 10 outside a view of 10 rows"):
        view[10]


def test_episode_blocks_hold_whole_episodes_within_the_byte_budget():
    lengths = np.array([3, 9, 1, 4, 4, 12, 2, 5])
    ends = np.cumsum(lengths)
    blocks = list(episode_blocks(ends, row_bytes=10, max_bytes=80))  # 8 decisions per block
    assert [(b.start, b.stop) for b, _ in blocks] == [(0, 3), (3, 12), (12, 17), (17, 21), (21, 33), (33, 40)]
    for rows, local in blocks:
        assert local[-1] == rows.stop - rows.start and set(local + rows.start) <= set(ends)
        assert rows.stop - rows.start <= 8 or len(local) == 1  # over budget only as one long episode


def test_load_decisions_leaves_sample_batches_in_the_store_and_fits_the_same_monitor(store_path):
    store = EpisodeStore.open(store_path)
    episodes = successful_in_distribution(store)
    data, identity = load_decisions(store, episodes=episodes)
    assert isinstance(data.samples, RowSubset) and identity == PolicyIdentity(8, 16, 6, 2, 2, "", None)
    in_memory = ScoreFitData(data.embeddings, np.asarray(data.samples), data.decision_ends)
    scores = {"ace": {"score": "ace", "dims": [0, 1]}, "stac": {"score": "stac", "n_action_steps": 2},
              "rnd_a": {"score": "rnd_a", "target_widths": [8], "predictor_widths": [8, 8], "out_dim": 4, "train": {"max_epochs": 2}}}
    lazy_monitor = fit_monitor(data, identity, scores=scores, rule="or")
    memory_monitor = fit_monitor(in_memory, identity, scores=scores, rule="or")
    lazy = lazy_monitor.score_offline(data.embeddings, data.samples, data.decision_ends)
    memory = memory_monitor.score_offline(in_memory.embeddings, in_memory.samples, in_memory.decision_ends)
    for name in scores:
        np.testing.assert_array_equal(lazy[name], memory[name], err_msg=name)


def test_damaged_sample_bytes_met_while_streaming_raise_the_stores_own_error(tmp_path, monkeypatch):
    """Sample batches left in the store are read at fit / scoring time: a truncated chunk there still
    ends in DamagedStoreError naming the array and file (not a score's fit error)."""
    path = tmp_path / "r.zarr"
    write_synthetic_store(path, TASK, seed=5, n_success_id=24, n_success_ood=2, n_fail_id=3, n_fail_ood=3)
    chunk = sorted((path / "decisions" / "samples").glob("[0-9]*"))[-1]
    chunk.write_bytes(chunk.read_bytes()[: chunk.stat().st_size // 2])
    monkeypatch.setattr(rowview, "IN_MEMORY_BYTES", 0)
    ro = load_rollouts(str(path))["synthetic"]  # nothing of the samples read yet
    split = split_episodes(ro.success, ro.ood, seed=0)
    specs = resolve_specs(TINY_SCORES, ["ace", "stac"], ro)
    with pytest.raises(DamagedStoreError, match=f"decisions/samples/{chunk.name}"):
        fit_and_score(ro, np.arange(ro.n_episodes), specs)  # every episode: the fit reads the damaged chunk
    with pytest.raises(DamagedStoreError, match=f"decisions/samples/{chunk.name}"):
        fit_and_score(ro, split.fit[:2], specs)  # the fit may miss it; scoring every episode does not
