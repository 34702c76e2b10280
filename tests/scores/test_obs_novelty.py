"""Raw-observation novelty: the score contract for observation inputs, separation read from real
zarr stores, blindness to the embedding, clear errors, and a monitor of it alone live in MuJoCo."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from score_helpers import TINY, Decisions

from benchmarks.synthetic_stores import write_episodes
from fiper.monitor.artifact import load_monitor, save_monitor
from fiper.monitor.decision_data import load_decisions
from fiper.monitor.fitting import fit_monitor
from fiper.scores import FailureScore, ScoreFitData, ScoreNotFittedError, make_score, score_from_state
from fiper.scores.images import image_axes, pool_image
from fiper.scores.obs_novelty import key_features
from fiper.storage import EpisodeStore

D, B, H, A = 6, 4, 3, 2


@pytest.fixture(scope="module")
def decisions():
    return Decisions(seed=2)


@pytest.fixture(scope="module", params=["mahalanobis", "knn"])
def fitted(request):
    return make_score("obs_novelty", **{**TINY["obs_novelty"], "method": request.param}).fit(Decisions(seed=1).fit_data())


def _online(score, dec) -> np.ndarray:
    out, start = [], 0
    for end in dec.decision_ends:
        score.reset()
        for i in range(start, end):
            obs = {k: torch.from_numpy(np.ascontiguousarray(v[i])) for k, v in dec.observations.items()}
            out.append(score.step(None, None, observation=obs))
        start = end
    return np.array(out)


def test_contract_online_offline_chunks_state(fitted, decisions, tmp_path):
    assert isinstance(fitted, FailureScore) and fitted.needs == {"observation"}
    assert fitted.embedding_dim is None and fitted.sample_shape is None
    assert fitted.config["keys"] == ["image", "state"]  # resolved at fit: every observation key, saved
    args = dict(decision_ends=decisions.decision_ends, observations=decisions.observations)
    offline = fitted.score_offline(**args)
    assert offline.shape == (21,) and offline.dtype == np.float64 and np.ptp(offline) > 0
    np.testing.assert_allclose(_online(fitted, decisions), offline, rtol=1e-9)
    fitted.chunk_elements = 1
    try:
        np.testing.assert_allclose(fitted.score_offline(**args), offline, rtol=1e-12)
    finally:
        del fitted.chunk_elements
    tensors, config = fitted.state()
    save_file(tensors, tmp_path / "s.safetensors")
    (tmp_path / "s.json").write_text(json.dumps(config))
    loaded = score_from_state(load_file(tmp_path / "s.safetensors"), json.loads((tmp_path / "s.json").read_text()))
    assert loaded.config == fitted.config and loaded.key_shapes == {"image": (16, 20, 3), "state": (3,)}
    np.testing.assert_array_equal(loaded.score_offline(**args), offline)
    np.testing.assert_array_equal(_online(loaded, decisions), _online(fitted, decisions))
    again = make_score("obs_novelty", **fitted.config).fit(Decisions(seed=1).fit_data())
    np.testing.assert_array_equal(again.score_offline(**args), offline)  # fit is deterministic


def test_bad_inputs_raise_naming_the_problem(fitted, decisions):
    obs = {k: v[0] for k, v in decisions.observations.items()}
    with pytest.raises(ValueError, match=r"'state' has shape \(4,\) but the score was fitted on \(3,\)"):
        fitted.step(observation={**obs, "state": np.zeros(4)})
    with pytest.raises(ValueError, match="non-finite"):
        fitted.step(observation={**obs, "state": np.array([0.0, np.nan, 0.0])})
    with pytest.raises(ValueError, match=r"reads the observation keys \['image'\] .* holds \['state'\]; record"):
        fitted.step(observation={"state": obs["state"]})
    with pytest.raises(ValueError, match="reads the raw observation .* observation=obs"):
        fitted.step(torch.zeros(8), None)
    with pytest.raises(ValueError, match="decision_ends"):
        fitted.score_offline(decision_ends=[5], observations=decisions.observations)
    with pytest.raises(ScoreNotFittedError):
        make_score("obs_novelty").score_offline(decision_ends=decisions.decision_ends, observations=decisions.observations)
    with pytest.raises(ValueError, match="method must be one of"):
        make_score("obs_novelty", method="rnd")
    with pytest.raises(ValueError, match="keys must be a non-empty list"):
        make_score("obs_novelty", keys="state")
    with pytest.raises(ValueError, match=r"'stack' has per-step shape \(20, 20, 16\): not an image .* channel axis .* too large"):
        key_features("stack", np.zeros((2, 20, 20, 16)), 8)


def test_images_become_grey_pooled_blocks():
    img = np.arange(2 * 16 * 24 * 3, dtype=np.float64).reshape(2, 16, 24, 3)
    feats = key_features("cam", img, 2)
    grey = img.mean(axis=-1)
    np.testing.assert_allclose(feats[0], [grey[0, :8, :12].mean(), grey[0, :8, 12:].mean(), grey[0, 8:, :12].mean(), grey[0, 8:, 12:].mean()])
    np.testing.assert_allclose(key_features("cam", img.transpose(0, 3, 1, 2), 2), feats)  # channels first or last
    assert pool_image(grey, 32).shape == (2, 16, 24)  # never more blocks than pixels
    np.testing.assert_allclose(key_features("grey", grey, 2), feats)  # a 2-d image, both sides past IMAGE_MIN_SIDE


def test_an_n_by_d_array_is_read_whole_not_averaged_as_an_image():
    """A (1, D) state (one ManiSkill env), (n, d) keypoints or a taxel grid: every feature, as the policies read them,
    not block means that would mix unrelated entries."""
    rng = np.random.default_rng(0)
    for shape in ((1, 35), (4, 12), (8, 30), (12, 12), (12, 12, 3), (5, 6, 7)):
        rows = rng.normal(size=(3, *shape))
        np.testing.assert_array_equal(key_features("obs", rows, 8), rows.reshape(3, -1))
    assert key_features("depth", rng.normal(size=(3, 16, 20)), 8).shape == (3, 64)


def test_one_image_rule_for_every_score_that_reads_images():
    """obs_novelty pools exactly the arrays reconstruction (and the evaluation's camera keys) call images."""
    rng = np.random.default_rng(1)
    for shape in ((16, 16), (15, 40), (16, 20, 3), (3, 20, 16), (8, 30)):
        rows = rng.normal(size=(2, *shape))
        pooled = key_features("k", rows, 4).shape[1] < rows[0].size
        assert pooled == (image_axes(shape) is not None), shape


def test_pooling_repeats_the_pixels_of_a_small_image_only_when_asked():
    x = np.arange(2 * 2, dtype=np.float64).reshape(1, 2, 2)
    np.testing.assert_array_equal(pool_image(x, 4), x)
    np.testing.assert_array_equal(pool_image(x, 4, fill=True)[0], [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]])
    np.testing.assert_allclose(pool_image(np.arange(36.0).reshape(1, 6, 6), 3, fill=True)[0, 0], [3.5, 5.5, 7.5])


def _write_store(path, n_episodes, rng, *, obs_shift, emb_shift) -> EpisodeStore:
    """Real rollout store: 'state' (6,) and a 16x16 RGB 'image' per env step, 2 env steps per decision.
    Episodes [0, n_episodes/2) are in distribution; the rest are shifted by the given amounts."""
    episodes_written = []
    basis = rng.normal(size=(2, 6))
    for e in range(n_episodes):
        ood = e >= n_episodes // 2
        steps, n = 12, 6
        latent = rng.normal(size=(steps, 2))
        state = latent @ basis + 0.05 * rng.normal(size=(steps, 6)) + (obs_shift * np.r_[1.0, -1.0, 0, 0, 0, 0] if ood else 0)
        image = np.clip(rng.normal(120 + (40 * obs_shift if ood else 0), 20, size=(steps, 16, 16, 3)), 0, 255).astype(np.uint8)
        emb = rng.normal(size=(n, D)) + (emb_shift if ood else 0.0)
        decisions = {"embedding": emb.astype(np.float32), "samples": rng.normal(size=(n, B, H, A)).astype(np.float32),
                     "env_step": np.arange(n, dtype=np.int64) * 2}
        data = {"state": state.astype(np.float32), "image": image, "action": rng.normal(size=(steps, A)).astype(np.float32)}
        episodes_written.append((data, decisions, {"success": True, "shift": "shifted" if ood else "none"}))
    return write_episodes(path, episodes_written)  # the store layout append_episode writes, in one pass


def _episode_max(score, store, episodes, auroc_inputs=None):
    data = ScoreFitData.from_store(store, episodes=episodes, observations=True)
    if score.needs == {"observation"}:
        raw = score.score_offline(decision_ends=data.decision_ends, observations=data.observations)
    else:
        raw = score.score_offline(data.embeddings, None, data.decision_ends)
    return np.array([seg.max() for seg in np.split(raw, data.decision_ends[:-1])])


@pytest.mark.parametrize("method", ["mahalanobis", "knn"])
def test_separates_shifted_observations_read_from_a_store(tmp_path, auroc, method):
    store = _write_store(tmp_path / "obs.zarr", 60, np.random.default_rng(0), obs_shift=1.0, emb_shift=0.0)
    fit = ScoreFitData.from_store(store, episodes=range(20), observations=True)
    assert sorted(fit.observations) == ["image", "state"]  # every recorded key but the action
    score = make_score("obs_novelty", method=method).fit(fit)
    ind, ood = _episode_max(score, store, range(20, 30)), _episode_max(score, store, range(30, 60))
    assert auroc(ind, ood) >= 0.95
    # each key alone carries the shift: the low-dim vector (off its plane: whitened distance only), and
    # the image through its 8x8 grey blocks
    for key in ("state", "image") if method == "mahalanobis" else ("image",):
        alone = make_score("obs_novelty", keys=[key], method=method).fit(fit)
        assert auroc(_episode_max(alone, store, range(20, 30)), _episode_max(alone, store, range(30, 60))) >= 0.9


def test_reads_the_observation_not_the_embedding(tmp_path, auroc):
    """A store whose shifted episodes differ only in the embedding: the embedding distance sees it, this score does not."""
    store = _write_store(tmp_path / "emb.zarr", 80, np.random.default_rng(1), obs_shift=0.0, emb_shift=3.0)
    fit = ScoreFitData.from_store(store, episodes=range(25), observations=True)
    obs_score = make_score("obs_novelty").fit(fit)
    emb_score = make_score("mahalanobis").fit(fit)
    ind, ood = range(25, 40), range(40, 80)
    assert auroc(_episode_max(emb_score, store, ind), _episode_max(emb_score, store, ood)) >= 0.95
    assert 0.3 <= auroc(_episode_max(obs_score, store, ind), _episode_max(obs_score, store, ood)) <= 0.7


def test_store_without_the_observation_keys_is_a_clear_error(tmp_path):
    store = EpisodeStore.create(tmp_path / "bare.zarr")
    for _ in range(2):
        store.append_episode({"action": np.zeros((4, A), np.float32)}, meta={"success": True},
                             decisions={"embedding": np.zeros((2, D), np.float32), "samples": np.zeros((2, B, H, A), np.float32),
                                        "env_step": np.array([0, 2])})
    data = ScoreFitData.from_store(EpisodeStore.open(tmp_path / "bare.zarr"), observations=True)
    with pytest.raises(ValueError, match=r"bare.zarr holds no observation keys; record the observation keys with the rollouts"):
        make_score("obs_novelty").fit(data)
    with pytest.raises(ValueError, match="reads the raw observation but the fit data holds none"):
        make_score("obs_novelty").fit(ScoreFitData.from_store(EpisodeStore.open(tmp_path / "bare.zarr")))
    store = _write_store(tmp_path / "obs.zarr", 2, np.random.default_rng(0), obs_shift=0.0, emb_shift=0.0)
    with pytest.raises(ValueError, match=r"reads the observation keys \['depth'\] but .*obs.zarr holds \['image', 'state'\]"):
        make_score("obs_novelty", keys=["depth"]).fit(ScoreFitData.from_store(store, episodes=[0], observations=True))


def test_monitor_fitted_calibrated_and_saved_as_the_launchers_do(tmp_path):
    """load_decisions (launch.fit / launch.calibrate) hands the observations on; the monitor saves and loads."""
    store = _write_store(tmp_path / "obs.zarr", 40, np.random.default_rng(4), obs_shift=1.0, emb_shift=0.0)
    data, identity = load_decisions(store, episodes=np.arange(10))
    monitor = fit_monitor(data, identity, scores={"obs": {"score": "obs_novelty"}}, windows={"obs": 2}, rule="single")
    cal, _ = load_decisions(store, episodes=np.arange(10, 15))
    raw = monitor.score_offline(cal.embeddings, cal.samples, cal.decision_ends, observations=cal.observations)
    monitor.calibrate(raw, cal.decision_ends, delta=0.2)
    save_monitor(monitor, tmp_path / "monitor")
    loaded = load_monitor(tmp_path / "monitor")
    test, _ = load_decisions(store, episodes=np.arange(15, 40))  # 5 in distribution, then 20 shifted
    scores = loaded.score_offline(None, None, test.decision_ends, observations=test.observations)
    np.testing.assert_array_equal(scores["obs"], monitor.score_offline(None, None, test.decision_ends, observations=test.observations)["obs"])
    trace = loaded.alarms_offline(scores, test.decision_ends)
    flagged = trace.first_alarm >= 0
    assert flagged[5:].mean() >= 0.9 and flagged[:5].mean() <= 0.4


def test_decisions_that_cannot_be_placed_are_named(tmp_path):
    """A store with neither decisions/env_step nor n_action_steps fits every other score; this one says why it cannot."""
    store = EpisodeStore.create(tmp_path / "nosteps.zarr")
    for _ in range(3):
        store.append_episode({"state": np.zeros((4, 3), np.float32), "action": np.zeros((4, A), np.float32)}, meta={"success": True},
                             decisions={"embedding": np.ones((2, D), np.float32), "samples": np.zeros((2, B, H, A), np.float32)})
    data, _ = load_decisions(EpisodeStore.open(tmp_path / "nosteps.zarr"))
    make_score("mahalanobis").fit(data)
    with pytest.raises(ValueError, match="records no decisions/env_step and no n_action_steps attr"):
        make_score("obs_novelty").fit(data)


def test_colour_sees_a_change_of_hue_that_grey_cannot():
    """A red patch turned blue keeps every grey value; pooled per channel (colour=true) it stands out."""
    rng = np.random.default_rng(0)

    def frames(k, blue):
        img = rng.normal(100, 5, size=(k, 16, 16, 3))
        img[:, 4:8, 4:8] = [200, 40, 40] if not blue else [40, 40, 200]  # same channel mean, other hue
        return img

    fit = ScoreFitData(None, None, np.arange(1, 401), observations={"cam": frames(400, False)})
    ends = np.arange(1, 101)
    same, hue = frames(100, False), frames(100, True)
    np.testing.assert_allclose(key_features("cam", hue, 8).mean(0), key_features("cam", same, 8).mean(0), atol=1.0)  # same grey
    grey = make_score("obs_novelty").fit(fit)
    colour = make_score("obs_novelty", colour=True).fit(fit)
    assert key_features("cam", same, 8, colour=True).shape == (100, 3 * 64)
    g_same, g_hue = (grey.score_offline(observations={"cam": x}, decision_ends=ends) for x in (same, hue))
    c_same, c_hue = (colour.score_offline(observations={"cam": x}, decision_ends=ends) for x in (same, hue))
    assert np.quantile(c_hue, 0.01) > 3 * np.quantile(c_same, 0.99)
    assert np.median(g_hue) < 1.5 * np.median(g_same)
    with pytest.raises(ValueError, match="colour must be true or false"):
        make_score("obs_novelty", colour="yes")


@pytest.mark.parametrize("method", ["mahalanobis", "knn"])
def test_a_feature_constant_in_fit_counts_in_the_units_of_the_others(method):
    """A flag that is always 0 in the fit decisions (an obstacle present: 1) is measured in the units of
    the features that moved (positions in metres, spread 0.05): setting it reads as 20 spreads, not 1."""
    rng = np.random.default_rng(0)
    n, spread = 600, 0.05

    def rows(k):
        return np.concatenate([rng.normal(0.0, spread, (k, 3)), np.zeros((k, 1))], axis=1)

    fit = ScoreFitData(None, None, np.arange(1, n + 1), observations={"state": rows(n)})
    test = rows(200)
    flagged, moved = test.copy(), test.copy()
    flagged[:, 3] = 1.0  # the flag set, everything else in distribution
    moved[:, 0] += 4 * spread  # one position 4 spreads out
    ends = np.arange(1, 201)

    def scores(score, x):
        return score.score_offline(observations={"state": x}, decision_ends=ends)

    median = make_score("obs_novelty", method=method).fit(fit)
    unit = make_score("obs_novelty", method=method, constant_scale=1.0).fit(fit)
    assert median.config["constant_scale"] == "median"
    base = scores(median, test)
    np.testing.assert_allclose(scores(unit, test), base, rtol=1e-9)  # only the constant feature is scaled differently
    np.testing.assert_allclose(scores(unit, moved), scores(median, moved), rtol=1e-9)
    lift_unit = np.median(scores(unit, flagged) - base)
    lift_median = np.median(scores(median, flagged) - base)
    assert lift_median > 10 * lift_unit
    assert np.quantile(scores(median, flagged), 0.01) > max(np.quantile(base, 0.99), np.median(scores(median, moved)))
    with pytest.raises(ValueError, match="constant_scale must be 'median'"):
        make_score("obs_novelty", constant_scale=0.0)


def test_a_state_saved_before_feature_standardisation_scores_as_before(decisions):
    """States saved without the score's own feature standardisation load with the unit scale they were fitted with."""
    unit = make_score("obs_novelty", **{**TINY["obs_novelty"], "constant_scale": 1.0}).fit(Decisions(seed=1).fit_data())
    tensors, config = unit.state()
    old = {k: v for k, v in tensors.items() if not k.startswith("feature.")}
    old["distance.mean"] = unit.distance.mean * unit.feature_std + unit.feature_mean  # the inner distance saw raw features
    old["distance.std"] = unit.distance.std * unit.feature_std
    legacy = {**config, "params": {k: v for k, v in config["params"].items() if k != "constant_scale"}}
    loaded = score_from_state(old, legacy)
    args = dict(decision_ends=decisions.decision_ends, observations=decisions.observations)
    assert loaded.config["constant_scale"] == 1.0
    np.testing.assert_allclose(loaded.score_offline(**args), unit.score_offline(**args), rtol=1e-9)
