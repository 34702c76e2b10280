"""MonitoredPolicy in a real MuJoCo task: recording, injected alarms, fallbacks, fail-safe."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import envs
from calibration import Threshold
from fiper.control import MonitoredPolicy, RolloutRecorder, run_episode
from fiper.interventions import FallbackContext, GradedResponse, HoldPosition, Retreat
from fiper.monitor import FailureMonitor, PolicyIdentity
from fiper.storage import EpisodeStore
from loop_setup import B, MAX_STEPS, alarm_from, context, make_env
from loop_setup import setup as control_setup  # noqa: F401  (module fixture: policy dir + fitted monitor)


@pytest.fixture(scope="module")
def setup(control_setup):
    return control_setup


def test_monitored_rollout_records_every_contract_key(setup, tmp_path):
    root, policy, monitor = setup
    agent = MonitoredPolicy(policy, monitor, num_samples=B)
    recorder = RolloutRecorder(tmp_path / "rollouts.zarr", score_names=monitor.names, attrs={"task": "push_t"})
    env = make_env()
    for seed in (1, 2):
        result = run_episode(env, agent, seed=seed, labels={"shift": "none", "severity": 0.0})
        recorder.write(result.steps, result.decisions, result.labels)
    store = EpisodeStore.open(tmp_path / "rollouts.zarr")
    assert store.n_episodes == 2
    assert {"agent_pos", "object", "action"} <= set(store.data_keys)
    need = {"embedding", "samples", "env_step", "alarm", "score/rnd_oe", "score/ace", "ratio/ace", "intervention", "timing/total_ms"}
    assert need <= set(store.decision_keys)
    assert {"success", "failure_step", "shift", "severity", "seed"} <= set(store.meta_keys)
    dec = store.episode_decisions(0)
    n = len(dec["env_step"])
    assert dec["samples"].shape == (n, B, policy.horizon, policy.action_dim)
    np.testing.assert_array_equal(dec["env_step"], np.arange(n) * policy.n_action_steps)
    assert store.episode_lengths[0] == len(result.infos) or store.episode_lengths[1] == len(result.infos)
    assert np.all(np.isfinite(dec["score/rnd_oe"])) and np.all(dec["timing/total_ms"] > 0)
    # live scores equal the offline re-scoring of the recorded batches (float16 samples: ACE exact up to binning)
    offline = monitor.score_offline(dec["embedding"], dec["samples"].astype(np.float32), [n])
    np.testing.assert_allclose(offline["rnd_oe"], dec["score/rnd_oe"], rtol=1e-5)
    ace_gap = np.abs(offline["ace"] - dec["score/ace"])
    assert ace_gap.mean() < 0.05 and ace_gap.max() < 0.5, ace_gap  # bits; ACE spans 0..log2 B
    assert store.meta("seed").tolist() == [1, 2] and store.meta("shift").tolist() == ["none", "none"]


def test_hold_fallback_on_injected_alarm_keeps_position(setup):
    _, policy, monitor = setup
    ctx = context(policy)
    agent = MonitoredPolicy(policy, alarm_from(monitor, 2), num_samples=B, context=ctx,
                            response=GradedResponse(fallback=HoldPosition()))
    env = make_env(terminate=False)
    obs, _ = env.reset(seed=3)
    agent.reset(seed=3)
    positions, infos = [], []
    for _ in range(30):
        obs, *_ = env.step(agent.act(obs))
        infos.append(agent.last_info)
        positions.append(obs["agent_pos"][:2].copy())
    start = next(i for i, info in enumerate(infos) if info["fallback_active"])
    assert start == 2 * policy.n_action_steps  # third decision: alarm -> fallback
    assert infos[start]["intervention"] == "fallback:hold" and infos[start]["alarm"]
    held = np.array(positions[start + 2:])
    assert np.max(np.linalg.norm(held - held[0], axis=1)) < 2e-3  # stays put (m)
    assert not agent.queue and all(i["fallback_active"] for i in infos[start:])


def test_retreat_fallback_moves_back_along_the_path(setup):
    _, policy, monitor = setup
    ctx = context(policy)
    agent = MonitoredPolicy(policy, alarm_from(monitor, 4), num_samples=B, context=ctx,
                            response=GradedResponse(fallback=Retreat(steps=12)))
    env = make_env(terminate=False)
    obs, _ = env.reset(seed=4)
    agent.reset(seed=4)
    executed = []
    while True:
        action = agent.act(obs)
        if agent.fallback_active:
            break
        executed.append(action)
        obs, *_ = env.step(action)
    executed = np.array(executed)
    retreat, positions = [action], []
    obs, *_ = env.step(action)
    for _ in range(14):
        retreat.append(agent.act(obs))
        obs, *_ = env.step(retreat[-1])
        positions.append(obs["agent_pos"].copy())
    retreat = np.array(retreat)
    # after the first step (the measured position) it replays earlier targets, newest to oldest
    # (each matched at the newest recorded index not after the previous match: a policy may repeat a clipped target)
    idx, last = [], len(executed) - 1
    for a in retreat[1:12]:
        hits = np.flatnonzero(np.isclose(executed[: last + 1], a).all(1))
        if len(hits):
            idx.append(last := int(hits[-1]))
    assert len(idx) >= 10 and np.all(np.diff(idx) <= 0) and idx[0] - idx[-1] >= 8
    goal = retreat[-1]
    gaps = np.linalg.norm(np.array(positions) - goal, axis=1)
    assert gaps[-1] < 0.5 * gaps[0] + 1e-3  # the pusher travels back toward the oldest target


class Boom:
    """A score that breaks at its third decision (as a CUDA error or a NaN bug would)."""

    name, needs, embedding_dim, sample_shape, fitted = "boom", frozenset({"embedding"}), None, None, True

    def __init__(self):
        self.calls = 0

    def reset(self):
        self.calls = 0

    def step(self, embedding, samples):
        self.calls += 1
        if self.calls == 3:
            raise RuntimeError("simulated score failure")
        return 0.0

    step_checked = step

    def to(self, device):
        return self


def test_score_exception_triggers_fallback_and_is_recorded(setup, tmp_path):
    _, policy, _ = setup
    ident = PolicyIdentity.of(policy, B)
    monitor = FailureMonitor({"boom": Boom()}, ident, windows={"boom": 1}, rule="single",
                             thresholds={"boom": Threshold("constant", 0.1, [1.0], 10, True)})
    agent = MonitoredPolicy(policy, monitor, num_samples=B, context=context(policy), response=GradedResponse(fallback=HoldPosition()))
    result = run_episode(make_env(terminate=False), agent, seed=5)
    recorder = RolloutRecorder(tmp_path / "r.zarr", score_names=["boom"])
    recorder.write(result.steps, result.decisions, result.labels)
    dec = EpisodeStore.open(tmp_path / "r.zarr").episode_decisions(0)
    assert dec["failsafe"].tolist() == [False, False, True]
    assert "simulated score failure" in dec["reason"][2] and dec["intervention"][2] == "fallback:hold"
    assert len(result.steps["action"]) == MAX_STEPS  # the loop went on under the fallback, no crash
    with torch.no_grad():
        assert result.infos[-1]["fallback_active"]


def test_a_failing_reward_program_hands_over_to_the_fallback(setup):
    """A reward program that returns NaN at run time (it passed the probe on the first bind): the fallback takes
    over at that decision, with the error as the recorded reason; without a fallback the error surfaces instead of
    executing blind."""
    from fiper.interventions import Steering

    _, policy, monitor = setup

    class Broken:  # finite on its first call (the probe when the steering is first bound), NaN while steering
        calls = 0

        def __call__(self, traj):
            self.calls += 1
            return traj.sum((1, 2)) * (1.0 if self.calls == 1 else float("nan"))

    agent = MonitoredPolicy(policy, alarm_from(monitor, 1), response=GradedResponse(
        steering=Steering(Broken(), num_particles=B), fallback=HoldPosition()), context=context(policy), num_samples=B)
    result = run_episode(make_env(terminate=False), agent, seed=0)
    labels = [d.intervention for d in result.decisions]
    assert labels[0] == "none" and labels[1] == "fallback:hold"
    reason = result.decisions[1].verdict.reason
    assert "above threshold" in reason and "steering raised ValueError" in reason and "non-finite" in reason
    agent = MonitoredPolicy(policy, alarm_from(monitor, 1), response=GradedResponse(steering=Steering(Broken(), num_particles=B)),
                            num_samples=B)
    with pytest.raises(ValueError, match="non-finite"):
        run_episode(make_env(terminate=False), agent, seed=0)


def test_effort_actions_refuse_the_built_in_fallbacks_and_take_a_controller(setup):
    """Forces or torques declared as such (action_mode='effort'): a hold, retreat or return_retry would repeat or zero an
    effort, so each is refused before any episode, in the library and the launchers; a controller of the user's own runs."""
    from fiper.interventions import ReturnAndRetry, SafeController
    from launch.stress import action_context

    _, policy, monitor = setup
    effort = FallbackContext(action_dim=policy.action_dim, position_dims=[0, 1], action_mode="effort")
    for response in (GradedResponse(fallback=HoldPosition()), GradedResponse(fallback=Retreat())):
        with pytest.raises(ValueError, match=r"forces or torques \(action_mode='effort'\).*controller of your own"):
            MonitoredPolicy(policy, monitor, num_samples=B, context=effort, response=response)
    with pytest.raises(ValueError, match=r"return_retry commands positions or velocities, but the action entries are forces"):
        ReturnAndRetry(target="path").bind_context(effort)
    brake = GradedResponse(fallback=SafeController(lambda obs: np.zeros(policy.action_dim)))
    agent = MonitoredPolicy(policy, monitor, num_samples=B, context=effort, response=brake)
    assert agent.context.action_mode == "effort"
    with pytest.raises(ValueError, match=r"a fallback \(hold, stop, retreat, return_retry, ...\) commands positions"):
        action_context({"action_mode": "effort"}, 2, object())
    ctx = action_context({"action_mode": "effort"}, 2, object(), positions=False)  # a controller: every entry an effort
    assert ctx.action_mode == "effort" and list(ctx.position_dims) == [0, 1]


def test_a_fallback_context_for_another_action_size_is_refused_when_the_wrapper_is_built(setup):
    _, policy, monitor = setup
    wrong = FallbackContext(action_dim=policy.action_dim + 1, position_dims=[0, 1])
    with pytest.raises(ValueError, match=rf"FallbackContext\(action_dim={policy.action_dim + 1}\) but the policy's actions have "
                                         rf"{policy.action_dim} entries: give FallbackContext\(action_dim={policy.action_dim}"):
        MonitoredPolicy(policy, monitor, num_samples=B, context=wrong, response=GradedResponse(fallback=HoldPosition()))


def test_an_env_without_a_time_limit_is_an_error_naming_the_fix_not_a_rollout_that_never_ends(setup, monkeypatch):
    """An episode the policy never finishes, in an env that never truncates, stops at the step limit with the
    TimeLimit fix; an explicit max_steps still ends it as a timeout."""
    import gymnasium as gym

    from fiper.control import loop

    class Endless(gym.Wrapper):
        def step(self, action):
            obs, reward, _, _, info = self.env.step(action)
            return obs, reward, False, False, {}

    _, policy, _ = setup
    agent = MonitoredPolicy(policy, None, num_samples=B)
    monkeypatch.setattr(loop, "EPISODE_STEP_LIMIT", 12)
    with pytest.raises(ValueError, match=r"seed 3 ran 12 steps without ending; give the env a time limit.*TimeLimit"):
        run_episode(Endless(envs.make_env("push_t")), agent, seed=3)
    result = run_episode(Endless(envs.make_env("push_t")), agent, seed=3, max_steps=8)
    assert len(result.steps["action"]) == 8 and result.labels["failure_reason"] == "timeout"


class NarrowActions:
    """push-T whose declared action space is a fifth of the real one: the policy's actions leave it."""

    def __init__(self, env):
        import gymnasium as gym

        self.env = env
        self.action_space = gym.spaces.Box(env.action_space.low / 5, env.action_space.high / 5, dtype=np.float32)

    def __getattr__(self, name):
        return getattr(self.env, name)


def test_actions_outside_the_env_action_space_are_clipped_and_counted(setup):
    """The control loop never hands the env an action outside its action space (beyond the jitter at a bound it
    keeps, BOUNDS_TOLERANCE of the range): it clips, counts and says so, and the decisions keep the chunks as the
    policy commanded them."""
    from fiper.env_io import BOUNDS_TOLERANCE
    from fiper.control.sweep import SweepSummary

    _, policy, _ = setup
    agent = MonitoredPolicy(policy, None, num_samples=B)
    plain = run_episode(make_env(terminate=False), agent, seed=0)
    assert plain.clipped_steps == 0 and plain.clip_excess == 0.0
    narrow = NarrowActions(make_env(terminate=False))
    result = run_episode(narrow, agent, seed=0)
    high = narrow.action_space.high
    assert np.all(np.abs(result.steps["action"]) <= high + BOUNDS_TOLERANCE * 2 * high + 1e-9)
    commanded = np.concatenate([d.executed[: policy.n_action_steps] for d in result.decisions])
    outside = int((np.abs(commanded) > high * 1.02).any(axis=1).sum())
    assert outside > 0 and result.clipped_steps >= outside
    assert result.clip_excess == pytest.approx(float(((np.abs(commanded) - high) / (2 * high)).max()), rel=1e-5)
    assert sum("clipped" in info for info in result.infos) == result.clipped_steps
    summary = SweepSummary()
    summary.add("none", 0.0, result.success, False, result.clipped_steps, result.clip_excess, result.n_steps)
    share = result.clipped_steps / result.n_steps
    assert f"{result.clipped_steps} of the policy's {result.n_steps} actions ({share:.0%}) left the env's action space" in summary.table()
    assert ("most of them, so they likely come in other units" in summary.table()) == (share >= 0.5)


def test_an_env_step_whose_info_is_no_dict_stops_the_rollout_naming_the_fix(setup):
    _, policy, monitor = setup

    class NoInfo(gym.Wrapper):
        def step(self, action):
            return *self.env.step(action)[:4], None

    with pytest.raises(ValueError, match=r"the env's step 0 of seed 5 returned info of type NoneType, not a dict"):
        run_episode(NoInfo(make_env()), MonitoredPolicy(policy, monitor, num_samples=B), seed=5)


def test_an_unreadable_observation_without_a_fallback_names_the_env_not_the_policy_as_what_to_fix(setup):
    from fiper.control import FailSafeError
    from fiper.control.failsafe import fault_owner

    _, policy, monitor = setup
    agent = MonitoredPolicy(policy, monitor, num_samples=B)
    agent.reset(seed=0)
    obs = make_env().reset(seed=0)[0]
    with pytest.raises(FailSafeError, match=r"invalid observation: KeyError: observation lacks \['object'\]") as err:
        agent.act({k: v for k, v in obs.items() if k != "object"})
    assert err.value.source == "observation" and fault_owner(err.value) == "the env's observation"
    assert fault_owner(FailSafeError("the sampled chunks hold NaN")) == "the policy"
