"""Reconstruction novelty: the contract (step == offline, chunks, state round trip, deterministic fit), an unseen
block in the scene separates, better than pooled pixels, a monitor of it fitted from a store steps as it scores
offline, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from score_helpers import Decisions

from benchmarks.synthetic_stores import write_episodes
from fiper.monitor.artifact import load_monitor, save_monitor
from fiper.monitor.decision_data import load_decisions
from fiper.monitor.fitting import fit_monitor
from fiper.scores import ScoreFitData, ScoreNotFittedError, make_score
from fiper.scores.contract import check_score, offline_scores
from fiper.scores.images import image_axes

SMALL = dict(image_size=16, widths=[8, 8], latent=8, train=dict(lr=3e-3, max_epochs=150, patience=20))
SIDE = 32


def scenes(episodes: int, seed: int, *, block: bool = False, length: int = 10) -> ScoreFitData:
    """RGB frames of a table: a red cube somewhere and a dark gripper moving to it from a random start; ``block`` adds
    a dark block of the gripper's colour at a place neither ever was (a distractor of the same pixels, elsewhere)."""
    g = np.random.default_rng(seed)
    frames, ends = [], []
    for _ in range(episodes):
        cube, hand = g.integers(4, 18, size=2), g.integers(4, 18, size=2).astype(float)
        for t in range(length):
            img = np.full((SIDE, SIDE, 3), 200, np.uint8)
            img[cube[0]:cube[0] + 5, cube[1]:cube[1] + 5] = (200, 30, 30)
            y, x = (hand + (cube - hand) * t / (length - 1)).astype(int)
            img[y:y + 6, x:x + 6] = 60
            if block:
                img[24:31, 24:31] = 60
            frames.append(img)
        ends.append(len(frames))
    frames = np.array(frames)
    return ScoreFitData(None, None, np.array(ends), seed=0, observations={"image": frames, "agent_pos": g.normal(size=(len(frames), 2))})


def _episode_max(scores, ends):
    return np.array([s.max() for s in np.split(scores, ends[:-1])])


def _auroc(neg, pos):
    return float((pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean())


@pytest.fixture(scope="module")
def fitted():
    return make_score("reconstruction", **SMALL).fit(scenes(30, seed=1))


def test_contract_on_the_shared_decisions():
    data = Decisions(seed=0).fit_data()  # its 'image' key (12 x 10 x 3) is read, its 'state' vector left alone
    out = check_score("reconstruction", data, params=dict(image_size=8, widths=[4], latent=4, train=dict(max_epochs=2)))
    assert out.shape == (int(data.decision_ends[-1]),) and np.ptp(out) > 0
    assert make_score("reconstruction", image_size=8, widths=[4], latent=4, train=dict(max_epochs=1)).fit(data).config["keys"] == ["image"]


def test_an_unseen_block_separates_better_than_pooled_pixels(fitted):
    """New episodes of the fit scenes against the same scenes with a block never seen: the autoencoder tells them apart
    (AUROC over episode maxima > 0.99; measured 1.0); pooled pixels' Mahalanobis distance does less well (0.95)."""
    nominal, shifted = scenes(20, seed=2), scenes(20, seed=3, block=True)
    ours = [_episode_max(offline_scores(fitted, d), d.decision_ends) for d in (nominal, shifted)]
    assert _auroc(*ours) > 0.99
    pooled = make_score("obs_novelty", keys=["image"]).fit(scenes(30, seed=1))
    theirs = [_episode_max(offline_scores(pooled, d), d.decision_ends) for d in (nominal, shifted)]
    assert _auroc(*theirs) < _auroc(*ours)


def test_image_layouts_are_told_from_vectors():
    assert [image_axes(s) for s in [(96, 96, 3), (3, 64, 80), (48, 48), (1, 12), (4,), (12, 10, 7), (8, 30), (12, 12, 3)]] == ["HWC", "CHW", "HW", None, None, None, None, None]


def _store(path, data: ScoreFitData):
    episodes, start = [], 0
    for end in data.decision_ends:
        n = int(end - start)
        obs = {k: np.asarray(v[start:end]) for k, v in data.observations.items()}
        decisions = {"embedding": np.zeros((n, 2), np.float32), "samples": np.zeros((n, 2, 3, 2), np.float32),
                     "env_step": np.arange(n, dtype=np.int64)}
        episodes.append(({**obs, "action": np.zeros((n, 2), np.float32)}, decisions, {"success": True, "shift": "none"}))
        start = int(end)
    return write_episodes(path, episodes)


def test_a_monitor_of_it_steps_live_as_it_scores_offline_and_saves(tmp_path):
    fit, identity = load_decisions(_store(tmp_path / "fit.zarr", scenes(30, seed=1)))
    monitor = fit_monitor(fit, identity, scores={"rec": {"score": "reconstruction", **SMALL}}, windows={"rec": 1}, rule="single")
    cal, _ = load_decisions(_store(tmp_path / "cal.zarr", scenes(30, seed=2)))
    monitor.calibrate(monitor.score_offline(None, None, cal.decision_ends, observations=cal.observations), cal.decision_ends, delta=0.1)
    save_monitor(monitor, tmp_path / "monitor")
    loaded = load_monitor(tmp_path / "monitor")
    for name, block in (("nominal", False), ("block", True)):
        test, _ = load_decisions(_store(tmp_path / f"{name}.zarr", scenes(40, seed=4, block=block)))
        offline = loaded.score_offline(None, None, test.decision_ends, observations=test.observations)["rec"]
        online, start = [], 0
        for end in test.decision_ends:
            loaded.reset()
            for i in range(start, int(end)):
                obs = {k: np.asarray(v[i : i + 1])[0] for k, v in test.observations.items()}
                online.append(loaded.step(np.zeros(2, np.float32), np.zeros((2, 3, 2), np.float32), observation=obs).scores["rec"])
            start = int(end)
        np.testing.assert_allclose(online, offline, rtol=1e-5, atol=1e-7)
        flagged = (loaded.alarms_offline({"rec": offline}, test.decision_ends).first_alarm >= 0).mean()
        assert flagged <= 0.25 if name == "nominal" else flagged == 1.0


def test_bad_inputs_raise_naming_the_problem(fitted):
    data = scenes(2, seed=5)
    obs = {k: v[0] for k, v in data.observations.items()}
    with pytest.raises(ValueError, match=r"'image' has shape \(16, 16, 3\) but the score was fitted on \(32, 32, 3\)"):
        fitted.step(observation={**obs, "image": np.zeros((16, 16, 3), np.uint8)})
    with pytest.raises(ValueError, match="non-finite"):
        fitted.step(observation={**obs, "image": np.full((SIDE, SIDE, 3), np.nan)})
    with pytest.raises(ValueError, match="reads the raw observation .* observation=obs"):
        fitted.step()
    with pytest.raises(ScoreNotFittedError):
        make_score("reconstruction").score_offline(decision_ends=data.decision_ends, observations=data.observations)
    with pytest.raises(ValueError, match=r"reconstructs camera images but the fit data holds none .*'agent_pos': \(2,\).* obs_novelty"):
        make_score("reconstruction").fit(ScoreFitData(None, None, data.decision_ends, observations={"agent_pos": data.observations["agent_pos"]}))
    with pytest.raises(ValueError, match=r"'agent_pos' has per-step shape \(2,\), not an image .* obs_novelty"):
        make_score("reconstruction", keys=["image", "agent_pos"], **SMALL).fit(data)
    with pytest.raises(ValueError, match=r"image_size must be a multiple of 2 \*\* len\(widths\) = 8"):
        make_score("reconstruction", image_size=20)
    with pytest.raises(ValueError, match="widths must be a non-empty list"):
        make_score("reconstruction", widths=[])
    with pytest.raises(ValueError, match="latent must be an integer >= 1"):
        make_score("reconstruction", latent=0)
    with pytest.raises(ValueError, match="reconstruction: keys must be a non-empty list"):
        make_score("reconstruction", keys="image")
