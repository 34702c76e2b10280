"""Dynamics residual: the contract (step == offline, chunks, state round trip, deterministic fit), separation of a
changed response to the same commands on a small simulated system, indifference to an unfamiliar state that
responds normally, and clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load, save
from score_helpers import TINY, Decisions

from benchmarks.synthetic_stores import write_episodes
from fiper.monitor.artifact import load_monitor, save_monitor
from fiper.monitor.decision_data import load_decisions
from fiper.monitor.fitting import fit_monitor
from fiper.scores import FailureScore, ScoreFitData, ScoreNotFittedError, make_score, score_from_state
from fiper.scores.contract import check_score, offline_scores, online_scores
from fiper.scores.dynamics_residual import choose_ridge, ridge_fit

B, H, A = 4, 3, 2


def point_mass(episodes: int, seed: int, *, gain: float = 1.0, offset: float = 0.0, length: int = 12):
    """A 2-D point steered to the origin: each decision the policy samples B chunks around a proportional command with
    a random detour, and the first sample's first action moves the point by ``gain`` times it (plus noise). ``offset`` starts it far from
    every fit start; ``gain`` != 1 is a world that answers the same commands differently."""
    g = np.random.default_rng(seed)
    states, samples, ends = [], [], []
    for _ in range(episodes):
        x = g.normal(scale=0.5, size=2) + offset
        for _ in range(length):
            command = -0.3 * x + 0.2 * g.normal(size=2)
            batch = command[None, None, :] * np.ones((B, H, A)) + 0.01 * g.normal(size=(B, H, A))
            states.append(x.copy())
            samples.append(batch)
            x = x + gain * batch[0, 0] + 0.01 * g.normal(size=2)
        ends.append(len(states))
    observations = {"agent_pos": np.array(states), "obstacle": np.zeros((len(states), 4))}
    if offset:
        observations["obstacle"][:] = [1.0, offset, offset, 0.1]  # the shifted state also shows a never-seen obstacle
    return ScoreFitData(None, np.array(samples, dtype=np.float32), np.array(ends), seed=0, observations=observations)


def _scores(score, data):
    return offline_scores(score, data)


def _episode_max(scores, ends):
    return np.array([s.max() for s in np.split(scores, ends[:-1])])


def _auroc(neg, pos):
    return float((pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean())


@pytest.fixture(scope="module", params=[1, 3])
def fitted(request):
    return make_score("dynamics_residual", horizon=request.param).fit(point_mass(30, seed=1))


@pytest.mark.parametrize("horizon", [1, 3])
def test_contract_on_the_shared_decisions(horizon):
    data = Decisions(seed=0).fit_data()
    out = check_score("dynamics_residual", data, params={**TINY["dynamics_residual"], "horizon": horizon})  # step == offline, refit, round trip
    starts = np.r_[0, data.decision_ends[:-1]]
    assert np.all(out[starts] == 0.0) and np.all(np.delete(out, starts) > 0)


def test_step_offline_chunks_and_round_trip(fitted):
    data = point_mass(4, seed=7, gain=0.5)
    offline = _scores(fitted, data)
    np.testing.assert_allclose(online_scores(fitted, data), offline, rtol=1e-5, atol=1e-5)
    fitted.chunk_elements = 1
    try:
        np.testing.assert_allclose(_scores(fitted, data), offline, rtol=1e-12)
    finally:
        del fitted.chunk_elements
    tensors, config = fitted.state()
    loaded = score_from_state(load(save(tensors)), json.loads(json.dumps(config)))
    assert isinstance(loaded, FailureScore) and loaded.config == fitted.config and loaded.sample_shape == (B, H, A)
    assert loaded.config["keys"] == ["agent_pos", "obstacle"] and loaded.ridge_used == fitted.ridge_used
    np.testing.assert_array_equal(_scores(loaded, data), offline)


def test_a_changed_gain_separates_an_unfamiliar_state_does_not(fitted):
    """A heavier point (gain 0.5) or a stronger motor (1.6) is told from nominal episodes; an episode started 3 units
    (about 6 start spreads) away beside an obstacle, moving as nominal ones do, is not, though the raw observation's
    distance flags it at once."""
    nominal = point_mass(30, seed=2)
    base = _episode_max(_scores(fitted, nominal), nominal.decision_ends)
    for gain in (0.5, 1.6):
        shifted = point_mass(30, seed=3, gain=gain)
        assert _auroc(base, _episode_max(_scores(fitted, shifted), shifted.decision_ends)) > 0.95
    far = point_mass(30, seed=4, offset=3.0)
    assert _auroc(base, _episode_max(_scores(fitted, far), far.decision_ends)) < 0.75
    novelty = make_score("obs_novelty").fit(point_mass(30, seed=1))
    seen = lambda d: _episode_max(novelty.score_offline(decision_ends=d.decision_ends, observations=d.observations), d.decision_ends)  # noqa: E731
    assert _auroc(seen(nominal), seen(far)) == 1.0


def test_the_forward_model_recovers_a_linear_system_and_the_penalty_follows_the_data():
    g = np.random.default_rng(0)
    x = torch.from_numpy(g.normal(size=(500, 3)))
    w = torch.from_numpy(g.normal(size=(3, 2)))
    y = x @ w + 1.0 + 0.01 * torch.from_numpy(g.normal(size=(500, 2)))
    episodes = np.repeat(np.arange(25), 20)
    ridge = choose_ridge(x, y, episodes)
    assert ridge <= 1e-3  # the data determine the map: held-out episodes want little penalty
    weight, _, out_mean = ridge_fit(x, y, ridge)
    np.testing.assert_allclose(weight.numpy(), w.numpy(), atol=5e-3)
    noise = torch.from_numpy(g.normal(size=(40, 2)))  # 40 rows of pure noise on 30 inputs: the penalty grows
    assert choose_ridge(torch.from_numpy(g.normal(size=(40, 30))), noise, np.repeat(np.arange(8), 5)) >= 1.0


def test_bad_inputs_raise_naming_the_problem(fitted):
    data = point_mass(2, seed=5)
    obs = {k: v[0] for k, v in data.observations.items()}
    with pytest.raises(ValueError, match=r"'agent_pos' has shape \(3,\) but the score was fitted on \(2,\)"):
        fitted.step(None, data.samples[0], observation={**obs, "agent_pos": np.zeros(3)})
    with pytest.raises(ValueError, match="non-finite"):
        fitted.step(None, data.samples[0], observation={**obs, "agent_pos": np.array([0.0, np.nan])})
    with pytest.raises(ValueError, match=r"reads the observation keys \['obstacle'\] .* holds \['agent_pos'\]"):
        fitted.step(None, data.samples[0], observation={"agent_pos": obs["agent_pos"]})
    with pytest.raises(ValueError, match="reads the raw observation .* observation=obs"):
        fitted.step(None, data.samples[0])
    with pytest.raises(ValueError, match="reads the sample batch but none was given"):
        fitted.step(None, None, observation=obs)
    with pytest.raises(ValueError, match="samples"):
        fitted.step(None, np.zeros((B, H, A + 1)), observation=obs)
    with pytest.raises(ValueError, match="reads the sample batches but none were given"):
        fitted.score_offline(None, None, data.decision_ends, observations=data.observations)
    with pytest.raises(ValueError, match="decision_ends"):
        fitted.score_offline(None, data.samples, [5], observations=data.observations)
    with pytest.raises(ScoreNotFittedError):
        make_score("dynamics_residual").score_offline(None, data.samples, data.decision_ends, observations=data.observations)
    with pytest.raises(ValueError, match="ScoreFitData.samples is None"):
        make_score("dynamics_residual").fit(ScoreFitData(None, None, data.decision_ends, observations=data.observations))
    with pytest.raises(ValueError, match="at least two decisions"):
        make_score("dynamics_residual").fit(ScoreFitData(None, data.samples[:2], [1, 2], observations={"s": np.zeros((2, 2))}))
    with pytest.raises(ValueError, match="horizon must be a whole number of decisions >= 1"):
        make_score("dynamics_residual", horizon=0)
    with pytest.raises(ValueError, match="ridge must be a positive number"):
        make_score("dynamics_residual", ridge=0)
    with pytest.raises(ValueError, match="dynamics_residual: keys must be a non-empty list"):
        make_score("dynamics_residual", keys="agent_pos")


def _store(path, data: ScoreFitData, shift: str):
    """A rollout store of ``point_mass`` episodes, one env step per decision."""
    episodes, start = [], 0
    for end in data.decision_ends:
        n = int(end - start)
        obs = {k: np.asarray(v[start:end], dtype=np.float32) for k, v in data.observations.items()}
        decisions = {"embedding": np.zeros((n, 2), np.float32), "samples": data.samples[start:end], "env_step": np.arange(n, dtype=np.int64)}
        episodes.append(({**obs, "action": data.samples[start:end, 0, 0]}, decisions, {"success": True, "shift": shift}))
        start = int(end)
    return write_episodes(path, episodes)


def test_a_monitor_of_it_steps_live_as_it_scores_offline_and_saves(tmp_path):
    """Fitted and calibrated as the launchers do (load_decisions), saved, loaded: step() on each decision's batch and
    observation gives the offline scores, and a heavier point is alarmed on while nominal episodes mostly are not."""
    fit, identity = load_decisions(_store(tmp_path / "fit.zarr", point_mass(30, seed=1), "none"))
    monitor = fit_monitor(fit, identity, scores={"dyn": {"score": "dynamics_residual"}}, windows={"dyn": 1}, rule="single")
    cal, _ = load_decisions(_store(tmp_path / "cal.zarr", point_mass(40, seed=2), "none"))
    raw = monitor.score_offline(None, cal.samples, cal.decision_ends, observations=cal.observations)
    monitor.calibrate(raw, cal.decision_ends, delta=0.1)
    save_monitor(monitor, tmp_path / "monitor")
    loaded = load_monitor(tmp_path / "monitor")
    for name, gain, most in (("nominal", 1.0, 0.3), ("heavy", 0.5, 1.0)):
        test, _ = load_decisions(_store(tmp_path / f"{name}.zarr", point_mass(10, seed=3, gain=gain), "none"))
        offline = loaded.score_offline(None, test.samples, test.decision_ends, observations=test.observations)["dyn"]
        online, start = [], 0
        for end in test.decision_ends:
            loaded.reset()
            for i in range(start, int(end)):
                obs = {k: np.asarray(v[i : i + 1])[0] for k, v in test.observations.items()}
                online.append(loaded.step(np.zeros(2, np.float32), test.samples[i], observation=obs).scores["dyn"])
            start = int(end)
        np.testing.assert_allclose(online, offline, rtol=1e-5, atol=1e-5)
        flagged = loaded.alarms_offline({"dyn": offline}, test.decision_ends).first_alarm >= 0
        assert (flagged.mean() <= most) if name == "nominal" else (flagged.mean() >= 0.9)
