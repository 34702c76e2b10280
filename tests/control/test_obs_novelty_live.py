"""A monitor of raw-observation novelty alone, fitted and calibrated on recorded rollouts, runs live
in MuJoCo: it scores the observation the wrapper saw, equals the offline re-scoring of the recorded
observations, alarms on an unfamiliar observation, and fails safe without one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import envs
from fiper.control import MonitoredPolicy, RolloutRecorder, run_episode
from fiper.monitor import FailureMonitor, PolicyIdentity
from fiper.scores import ScoreFitData
from fiper.storage import EpisodeStore
from policies import load_policy

B, MAX_STEPS = 4, 24
CHECKPOINT = Path(__file__).parents[2] / "launch/checkpoints/pick_place_diffusion_mlp"  # the shipped pick-and-place policy
SPEC = {"scores": {"obs": {"score": "obs_novelty"}}, "windows": {"obs": 1}, "rule": "single"}


def make_env():
    return envs.make_env("pick_place", max_episode_steps=MAX_STEPS)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """The shipped policy and 8 of its unmonitored rollouts, recorded with their observations."""
    root = tmp_path_factory.mktemp("obs_live")
    policy = load_policy(CHECKPOINT)
    recorder, bare, env = RolloutRecorder(root / "id.zarr", attrs={"task": "pick_place"}), MonitoredPolicy(policy, None, num_samples=B), make_env()
    for seed in range(8):
        result = run_episode(env, bare, seed=seed)
        recorder.write(result.steps, result.decisions, result.labels)
    return root, policy, EpisodeStore.open(root / "id.zarr")


def _observations(store, episodes=None) -> ScoreFitData:
    return ScoreFitData.from_store(store, episodes=episodes, samples=False, embeddings=False, observations=True)


def test_obs_novelty_monitor_alone_runs_live(recorded, tmp_path):
    root, policy, store = recorded
    assert set(policy.obs_shapes) <= set(store.data_keys)  # the recorder keeps the policy's observation keys
    monitor = FailureMonitor.from_spec(SPEC, _observations(store, range(4)), PolicyIdentity.of(policy, B))
    assert monitor.needs == {"observation"}
    cal = _observations(store, range(4, 8))
    monitor.calibrate(monitor.score_offline(None, None, cal.decision_ends, observations=cal.observations), cal.decision_ends,
                      delta=0.2)
    agent, env = MonitoredPolicy(policy, monitor, num_samples=B), make_env()
    live = RolloutRecorder(tmp_path / "live.zarr", score_names=monitor.names, attrs={"task": "pick_place"})
    result = run_episode(env, agent, seed=100)
    live.write(result.steps, result.decisions, result.labels)
    verdicts = [d.verdict for d in result.decisions]
    assert len(verdicts) >= 3 and not any(v.failsafe for v in verdicts)
    # the live scores are the offline scores of the observations the recorder kept
    recorded_live = EpisodeStore.open(tmp_path / "live.zarr")
    data = _observations(recorded_live)
    offline = monitor.score_offline(None, None, data.decision_ends, observations=data.observations)["obs"]
    np.testing.assert_allclose(recorded_live.read_decisions("score/obs"), offline, rtol=1e-9)
    assert np.ptp(offline) > 0

    # an observation far from every recorded one raises the alarm at once (a score alarm, not a fail-safe)
    obs, _ = env.reset(seed=101)
    agent.reset(seed=101)
    far = {**obs, "agent_pos": np.asarray(obs["agent_pos"]) + 10.0}
    agent.act(far)
    assert agent.last_info["alarm"] and not agent.last_info["failsafe"] and agent.last_info["ratios"]["obs"] > 1
    # a caller that does not hand the monitor the observation gets a fail-safe alarm that says so
    monitor.reset()
    verdict = monitor.step(np.zeros(policy.embedding_dim), np.zeros((B, policy.horizon, policy.action_dim)))
    assert verdict.failsafe and verdict.alarm and "reads the raw observation" in verdict.reason


def test_an_obstacle_never_seen_in_the_fit_rollouts_alarms_at_the_first_decision(recorded):
    """The obstacle key is all zeros in distribution; an obstacle in the scene is unfamiliar from the first
    observation, so the raw-observation monitor alarms at once (with the unit scale it would not: the flag
    would be one spread among positions whose spread is ~0.1 m)."""
    root, policy, store = recorded
    fit, cal = _observations(store, range(4)), _observations(store, range(4, 8))
    ratios = {}
    for scale in ("median", 1.0):
        spec = {**SPEC, "scores": {"obs": {"score": "obs_novelty", "constant_scale": scale}}}
        monitor = FailureMonitor.from_spec(spec, fit, PolicyIdentity.of(policy, B))
        monitor.calibrate(monitor.score_offline(None, None, cal.decision_ends, observations=cal.observations),
                          cal.decision_ends, delta=0.2)
        agent = MonitoredPolicy(policy, monitor, num_samples=B)
        env = envs.make_env("pick_place", shifts=[("obstacle", 1.0)], max_episode_steps=MAX_STEPS)
        obs, _ = env.reset(seed=7)
        agent.reset(seed=7)
        assert np.abs(np.asarray(obs["obstacle"])).sum() > 0  # the shift puts the obstacle in the observation
        agent.act(obs)
        ratios[scale] = agent.last_info["ratios"]["obs"]
        assert not agent.last_info["failsafe"] and agent.last_info["alarm"] == (ratios[scale] > 1)
    assert ratios["median"] > 2 and ratios[1.0] < 1, ratios  # measured 2.8 and 0.35


def test_rollouts_keep_a_camera_the_policy_leaves_out_when_the_monitor_reads_it(recorded):
    """A second camera the policy is not trained on, read by the monitor's obs_novelty: run_episode records it by
    default beside the policy's keys, so the rollouts can calibrate and evaluate that score."""
    import gymnasium as gym

    from fiper.control.loop import default_record_keys

    class SecondCamera(gym.ObservationWrapper):
        def observation(self, obs):  # a tiny 'wrist' image whose grey level follows the hand's x
            return {**obs, "wrist": np.full((16, 16, 3), int(100 + 300 * obs["agent_pos"][0]) % 256, np.uint8)}

    _, policy, _ = recorded
    rng = np.random.default_rng(0)
    fit = ScoreFitData(None, None, np.arange(4, 25, 4), observations={"wrist": rng.integers(0, 256, (24, 16, 16, 3), np.uint8)})
    spec = {**SPEC, "scores": {"obs": {"score": "obs_novelty", "keys": ["wrist"]}}}
    monitor = FailureMonitor.from_spec(spec, fit, PolicyIdentity.of(policy, B))
    monitor.calibrate(monitor.score_offline(None, None, fit.decision_ends, observations=fit.observations), fit.decision_ends,
                      delta=0.2)
    agent = MonitoredPolicy(policy, monitor, num_samples=B)
    assert "wrist" not in policy.obs_shapes and default_record_keys(agent) == [*policy.obs_shapes, "wrist"]
    assert default_record_keys(MonitoredPolicy(policy, None, num_samples=B)) == list(policy.obs_shapes)
    env = SecondCamera(make_env())
    result = run_episode(env, agent, seed=3, max_steps=6)
    assert result.steps["wrist"].shape == (6, 16, 16, 3) and result.steps["wrist"].dtype == np.uint8
    obs, _ = env.reset(seed=3)
    assert np.array_equal(result.steps["wrist"][0], obs["wrist"])  # the first step's frame, as the env gave it
    assert list(run_episode(env, agent, seed=3, max_steps=2, record_keys=["agent_pos"]).steps) == ["agent_pos", "action"]


def test_rollouts_keep_the_envs_small_keys_the_policy_does_not_read(recorded, tmp_path):
    """A policy of one's own that reads part of the observation: the rollouts still record the env's other small numeric
    keys by default (an obstacle's pose the policy ignores), so the raw-observation reference sees them; a camera nobody
    reads and a text entry are left out, and record_keys still picks exactly."""
    import gymnasium as gym

    class MoreKeys(gym.ObservationWrapper):
        def observation(self, obs):
            return {**obs, "beacon": np.array([1.0, 2.0, float(obs["agent_pos"][0])]), "label": "cube",
                    "cam": np.zeros((32, 32, 3), np.uint8)}

    _, policy, _ = recorded
    agent, env = MonitoredPolicy(policy, None, num_samples=B), MoreKeys(make_env())
    result = run_episode(env, agent, seed=5, max_steps=4)
    assert list(result.steps) == [*policy.obs_shapes, "beacon", "action"]
    obs, _ = env.reset(seed=5)
    np.testing.assert_array_equal(result.steps["beacon"][0], obs["beacon"])
    fit = ScoreFitData(None, None, np.array([len(result.steps["beacon"])]), observations={k: v for k, v in result.steps.items() if k != "action"})
    assert "beacon" in FailureMonitor.from_spec(SPEC, fit, PolicyIdentity.of(policy, B)).scores["obs"].key_shapes
    assert list(run_episode(env, agent, seed=5, max_steps=2, record_keys=["agent_pos"]).steps) == ["agent_pos", "action"]
    assert result.optional_keys == ("beacon",)
    # a new store keeps the key; one begun without it (an earlier version's, or a plain env's) is resumed without it
    for name, first in (("new", result), ("older", run_episode(make_env(), agent, seed=6, max_steps=4))):
        recorder = RolloutRecorder(tmp_path / f"{name}.zarr", attrs={"task": "pick_place"})
        for r in (first, result):
            recorder.write(r.steps, r.decisions, r.labels, optional_data=r.optional_keys)
        store = EpisodeStore.open(tmp_path / f"{name}.zarr")
        assert store.n_episodes == 2 and ("beacon" in store.data_keys) == (name == "new")
    with pytest.raises(Exception, match="unexpected \\['beacon'\\]"):  # a key named by record_keys is never dropped
        RolloutRecorder(tmp_path / "older.zarr", attrs={"task": "pick_place"}).write(result.steps, result.decisions, result.labels)
