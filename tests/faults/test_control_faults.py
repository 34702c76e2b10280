"""Every fault in the control loop is a recorded fail-safe alarm answered by the fallback, or a
FailSafeError without one; MonitoredPolicy never returns a non-finite action.

A small untrained push-T policy with a real ACE monitor, fed observations of the real MuJoCo task;
faults are injected into the observation, the policy, the monitor and the fallback.
"""

from __future__ import annotations

import re

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import envs
from calibration import Threshold
from fiper.control import FailSafeError, MonitoredPolicy, RolloutRecorder, run_episode
from fiper.interventions import FallbackContext, GradedResponse, HoldPosition, KeepOut, Steering
from fiper.monitor import FailureMonitor, PolicyIdentity
from fiper.monitor.fitting import fit_monitor
from fiper.scores import ScoreFitData
from fiper.storage import EpisodeStore
from policies import PolicyConfig, build_policy

B, K = 8, 4  # samples per decision, n_action_steps
FIX = "GradedResponse(fallback="

BAD_OBS = {  # name: (corrupt a valid observation, what the recorded reason says)
    "nan": (lambda o: {**o, "agent_pos": np.array([np.nan, 0.1], np.float32)}, "1 NaN or inf values"),
    "inf": (lambda o: {**o, "object": np.full(4, -np.inf, np.float32)}, "4 NaN or inf values"),
    "missing_key": (lambda o: {"agent_pos": o["agent_pos"]}, "lacks ['object']"),
    "wrong_shape": (lambda o: {**o, "object": o["object"][:3]}, "has shape (3,); the policy reads per-step shape (4,)"),
    "wrong_dtype": (lambda o: {**o, "agent_pos": np.array(["a", "b"])}, "has dtype <U1"),
    "an_array": (lambda o: o["agent_pos"], "lacks ['agent_pos', 'object']"),
    "a_tuple": (lambda o: (o["agent_pos"], o["object"]), "is a tuple"),
}


@pytest.fixture(scope="module")
def policy():
    torch.manual_seed(0)
    cfg = PolicyConfig(kind="diffusion", denoiser="mlp", horizon=8, n_action_steps=K, embed_dim=16, encoder_hidden=32,
                       mlp_hidden=32, mlp_layers=1, num_inference_steps=4)
    return build_policy(cfg, {"agent_pos": (2,), "object": (4,)}, 2)


def _decisions(policy, episodes: int, seed: int) -> ScoreFitData:
    g = torch.Generator().manual_seed(seed)
    obs = {k: torch.randn(episodes * 6, policy.n_obs_steps, *s, generator=g) for k, s in policy.obs_shapes.items()}
    with torch.no_grad():
        z = policy.encode(obs)
        samples = policy.sample(z, B, generator=g)
    return ScoreFitData(z.numpy(), samples.numpy(), np.arange(1, episodes + 1) * 6, seed=seed)


@pytest.fixture(scope="module")
def monitor(policy):
    """ACE fitted on the policy's own decisions; its threshold is out of reach, so every alarm here is a fail-safe one."""
    m = fit_monitor(_decisions(policy, 10, 0), PolicyIdentity.of(policy, B), scores={"ace": {"score": "ace"}}, windows={"ace": 1},
                    rule="single")
    m.set_thresholds({"ace": Threshold("constant", 0.2, [1e12], 10, True)})
    return m


def hold(policy, monitor, **kw) -> MonitoredPolicy:
    ctx = FallbackContext(action_dim=2, position_dims=[0, 1])
    return MonitoredPolicy(policy, monitor, response=GradedResponse(fallback=HoldPosition()), context=ctx, num_samples=B, **kw)


def drive(agent, steps: int, bad_at: int | None = None, corrupt=None, seed: int = 0):
    """Run the agent in push-T, feeding ``corrupt(obs)`` at step ``bad_at``; returns (actions, infos, observations)."""
    env = envs.make_env("push_t", max_episode_steps=100, terminate_on_success=False, terminate_on_failure=False)
    obs, _ = env.reset(seed=seed)
    agent.reset(seed=seed)
    actions, infos, seen = [], [], []
    for t in range(steps):
        seen.append(obs)
        actions.append(agent.act(corrupt(obs) if t == bad_at else obs))
        infos.append(agent.last_info)
        obs, *_ = env.step(actions[-1])
    return np.array(actions), infos, seen


class FaultyPolicy:
    """The real policy with one injected fault from its ``at``-th call of ``method`` on: an exception or NaN output."""

    def __init__(self, policy, method: str, at: int, fault: str = "raise"):
        self.policy, self.method, self.at, self.fault, self.calls = policy, method, at, fault, 0

    def __getattr__(self, name):
        return getattr(self.policy, name)

    def fingerprint(self) -> str | None:
        """The wrapped policy's weights: the monitor was fitted for them."""
        from fiper.monitor.identity import policy_fingerprint

        return policy_fingerprint(self.policy)

    def _call(self, method: str, *args, **kwargs):
        out = getattr(self.policy, method)(*args, **kwargs)
        if method == self.method:
            self.calls += 1
            if self.calls >= self.at:
                if self.fault == "raise":
                    raise RuntimeError(f"injected {method} failure")
                if self.fault in MALFORMED:
                    return MALFORMED[self.fault](out)
                return torch.full_like(out, torch.nan)
        return out

    def encode(self, obs):
        return self._call("encode", obs)

    def sample(self, embedding, num_samples, **kwargs):
        return self._call("sample", embedding, num_samples, **kwargs)


MALFORMED = {  # an adapter's output mistakes: right values, wrong container
    "batch_axis": lambda out: out[:, None],                       # (N, 1, D) / (N, 1, B, H, A)
    "flat": lambda out: out.reshape(-1, *out.shape[2:]),          # (N * B, H, A): B folded into N
    "numpy": lambda out: out.numpy().astype(np.float64),         # float64 numpy instead of a tensor
    "device": lambda out: out.to("meta"),                         # a device other than policy.device
}


class FaultyScore:
    """A fitted score whose value turns into an exception or NaN from its ``at``-th decision on."""

    def __init__(self, score, at: int, fault: str):
        self.score, self.at, self.fault, self.calls = score, at, fault, 0

    def __getattr__(self, name):
        return getattr(self.score, name)

    def reset(self):
        self.calls = 0
        self.score.reset()

    def _value(self, fn, *args):
        self.calls += 1
        if self.calls >= self.at:
            if self.fault == "raise":
                raise RuntimeError("injected score failure")
            return float("nan")
        return fn(*args)

    def step(self, embedding, samples):
        return self._value(self.score.step, embedding, samples)

    def step_checked(self, embedding, samples):
        return self._value(getattr(self.score, "step_checked", self.score.step), embedding, samples)


class RaisingMonitor(FailureMonitor):
    """A monitor whose step breaks its never-raise contract."""

    def step(self, *args, **kwargs):
        raise RuntimeError("injected monitor failure")


def with_scores(monitor, scores, cls=FailureMonitor) -> FailureMonitor:
    return cls(scores, monitor.identity, windows=monitor.windows, rule=monitor.rule, thresholds=monitor.thresholds)


# ---------------------------------------------------------------------------------------------- observations
@pytest.mark.parametrize("at", [K, K + 2], ids=["at_a_decision", "between_decisions"])
@pytest.mark.parametrize("fault", sorted(BAD_OBS))
def test_a_bad_observation_is_a_recorded_failsafe_alarm_answered_by_the_fallback(policy, monitor, fault, at):
    corrupt, says = BAD_OBS[fault]
    agent = hold(policy, monitor)
    actions, infos, seen = drive(agent, at + 4, at, corrupt)
    info = infos[at]
    assert info["decision"] and info["alarm"] and info["failsafe"] and info["intervention"] == "fallback:hold"
    assert info["reason"].startswith("fail-safe: invalid observation") and says in info["reason"] and says in info["fault"]
    assert [d.env_step for d in agent.decisions] == [*range(0, at, K), at]  # the fault is a decision of its own
    assert agent.decisions[-1].verdict.failsafe and says in agent.decisions[-1].verdict.reason
    assert all(i["fallback_active"] for i in infos[at:]) and not any(i["fallback_active"] for i in infos[:at])
    # the hold latched the position measured in the last valid observation, never the bad one
    np.testing.assert_allclose(actions[at:], np.repeat(seen[at - 1]["agent_pos"][None], 4, 0).astype(np.float64), atol=1e-6)


@pytest.mark.parametrize("setup", ["no_response", "steering_only", "no_monitor"])
@pytest.mark.parametrize("fault", ["nan", "missing_key", "wrong_dtype"])
def test_without_a_fallback_a_bad_observation_raises_failsafe_error(policy, monitor, setup, fault):
    corrupt, says = BAD_OBS[fault]
    response = GradedResponse(steering=Steering(KeepOut(center=[0.0, 0.0], radius=0.1), num_particles=B)) if setup == "steering_only" else None
    agent = MonitoredPolicy(policy, None if setup == "no_monitor" else monitor, response=response, num_samples=B)
    with pytest.raises(FailSafeError, match="no fallback is configured") as err:
        drive(agent, 8, K + 1, corrupt)
    assert says in str(err.value) and FIX in str(err.value)
    assert agent.last_info["failsafe"] and agent.decisions[-1].env_step == K + 1 and agent.decisions[-1].verdict.failsafe
    # a caller that catches the error and goes on gets no policy action back, as a fallback would latch: the agent stays
    # stopped until it hands control back on purpose (resume(), or reset() for a new episode)
    obs, _ = envs.make_env("push_t").reset(seed=0)
    with pytest.raises(FailSafeError, match=r"stopped at an earlier fail-safe alarm .* until reset\(\) .* or resume\(\)"):
        agent.act(obs)
    agent.resume()
    assert np.isfinite(agent.act(obs)).all() and agent.last_info["decision"] and not agent.fallback_active


@pytest.mark.parametrize("use_monitor", [True, False], ids=["monitored", "bare"])
def test_a_huge_finite_observation_never_returns_a_nan_action(policy, monitor, use_monitor):
    """1e30 passes the observation check but drives the policy's chunk to NaN: raised, or the fallback."""
    def huge(o):
        return {**o, "agent_pos": np.full(2, 1e30, np.float32)}

    agent = MonitoredPolicy(policy, monitor if use_monitor else None, num_samples=B)
    with pytest.raises(FailSafeError, match="no fallback is configured"):
        drive(agent, 6, K, huge)
    assert agent.decisions[-1].env_step == K and "non-finite" in agent.decisions[-1].verdict.reason
    actions, infos, _ = drive(hold(policy, monitor if use_monitor else None), 8, K, huge)
    assert np.isfinite(actions).all() and infos[K]["failsafe"] and infos[K]["intervention"] == "fallback:hold"


# ---------------------------------------------------------------------------------------------- policy, monitor
@pytest.mark.parametrize(("method", "kind", "says"), [
    ("encode", "raise", "the policy's encode raised RuntimeError: injected encode failure"),
    ("sample", "raise", "the policy's sample raised RuntimeError: injected sample failure"),
    ("sample", "nan", "non-finite values in samples"),
])
def test_a_policy_fault_at_a_decision_hands_over_to_the_fallback(policy, monitor, method, kind, says):
    agent = hold(FaultyPolicy(policy, method, at=2, fault=kind), monitor)
    actions, infos, _ = drive(agent, 10)
    assert np.isfinite(actions).all() and [i["intervention"] for i in infos if i["decision"]] == ["none", "fallback:hold"]
    assert infos[K]["failsafe"] and says in infos[K]["reason"] and agent.decisions[1].env_step == K
    assert agent.response.labels == [d.intervention for d in agent.decisions]  # the fault's decision is labelled too
    with pytest.raises(FailSafeError, match="injected" if kind == "raise" else "non-finite"):
        drive(MonitoredPolicy(FaultyPolicy(policy, method, at=2, fault=kind), monitor, num_samples=B), 10)


@pytest.mark.parametrize("use_monitor", [True, False], ids=["monitor", "no_monitor"])
@pytest.mark.parametrize(("method", "kind", "says"), [
    ("encode", "batch_axis", "the policy's encode returned shape (1, 1, 16), expected (N, D) = (1, 16)"),
    ("encode", "numpy", "the policy's encode returned a numpy.ndarray, not a torch.Tensor"),
    ("sample", "batch_axis", f"the policy's sample returned shape (1, 1, {B}, 8, 2), expected (N, B, H, A) = (1, {B}, 8, 2)"),
    ("sample", "flat", f"the policy's sample returned shape ({B}, 8, 2), expected (N, B, H, A) = (1, {B}, 8, 2)"),
    ("sample", "numpy", "the policy's sample returned a numpy.ndarray, not a torch.Tensor"),
    ("encode", "device", "the policy's encode returned a tensor on meta, expected policy.device = cpu"),
    ("sample", "device", "the policy's sample returned a tensor on meta, expected policy.device = cpu"),
])
def test_a_malformed_policy_output_is_a_failsafe_alarm_naming_the_expected_shape(policy, monitor, use_monitor, method,
                                                                                 kind, says):
    agent = hold(FaultyPolicy(policy, method, at=2, fault=kind), monitor if use_monitor else None)
    actions, infos, _ = drive(agent, 10)
    assert np.isfinite(actions).all() and infos[K]["failsafe"] and infos[K]["intervention"] == "fallback:hold"
    assert says in infos[K]["reason"] and "docs/adapters.md" in infos[K]["reason"]
    with pytest.raises(FailSafeError, match=re.escape(says)):
        drive(MonitoredPolicy(FaultyPolicy(policy, method, at=2, fault=kind), monitor if use_monitor else None,
                              num_samples=B), 10)


def test_a_nan_chunk_without_a_monitor_is_caught_by_the_action_check(policy):
    agent = hold(FaultyPolicy(policy, "sample", at=2, fault="nan"), None)
    actions, infos, _ = drive(agent, 10)
    assert np.isfinite(actions).all() and infos[K]["failsafe"]
    assert infos[K]["reason"] == "fail-safe: the chunk to execute holds 16 non-finite actions"  # (H=8, A=2)
    assert np.isnan(agent.decisions[1].executed).all() and np.isnan(agent.decisions[1].samples).all()


@pytest.mark.parametrize(("fault", "says"), [
    ("raise", "score 'ace' raised RuntimeError: injected score failure"),
    ("nan", "score 'ace' returned nan"),
    ("monitor", "the monitor raised RuntimeError: injected monitor failure"),
])
def test_a_monitor_fault_hands_over_to_the_fallback_and_is_recorded(policy, monitor, tmp_path, fault, says):
    if fault == "monitor":
        broken = with_scores(monitor, monitor.scores, RaisingMonitor)
        at = 1
    else:
        broken, at = with_scores(monitor, {"ace": FaultyScore(monitor.scores["ace"], at=2, fault=fault)}), 2
    env = envs.make_env("push_t", max_episode_steps=12, terminate_on_success=False, terminate_on_failure=False)
    result = run_episode(env, hold(policy, broken), seed=0)
    RolloutRecorder(tmp_path / "r.zarr", score_names=["ace"]).write(result.steps, result.decisions, result.labels)
    dec = EpisodeStore.open(tmp_path / "r.zarr").episode_decisions(0)
    assert dec["failsafe"].tolist() == [False] * (at - 1) + [True] and dec["alarm"][-1]
    assert says in dec["reason"][-1] and dec["intervention"][-1] == "fallback:hold"
    assert np.isfinite(result.steps["action"]).all() and len(result.steps["action"]) == 12
    with pytest.raises(FailSafeError, match="no fallback is configured"):
        run_episode(env, MonitoredPolicy(policy, broken, num_samples=B), seed=0)


# ---------------------------------------------------------------------------------------------- time budget
def test_an_overrun_is_a_failsafe_alarm_unless_only_reported(policy, monitor):
    actions, infos, _ = drive(hold(policy, monitor, time_budget_ms=1e-6), 6)
    first = infos[0]
    assert first["overrun"] and first["failsafe"] and first["intervention"] == "fallback:hold"
    assert "over the time budget of 1e-06 ms" in first["reason"] and np.isfinite(actions).all()
    assert sum(i["decision"] for i in infos) == 1 and first["timing_ms"]["total"] > 0
    actions, infos, _ = drive(hold(policy, monitor, time_budget_ms=1e-6, overrun_fallback=False), 2 * K)
    assert [i["overrun"] for i in infos if i["decision"]] == [True, True]
    assert not any(i["fallback_active"] or i["failsafe"] for i in infos if i["decision"])
    with pytest.raises(FailSafeError, match="time budget"):
        drive(MonitoredPolicy(policy, monitor, num_samples=B, time_budget_ms=1e-6), 2)


# ---------------------------------------------------------------------------------------------- fallback, recording
class NanFallback:
    name = "broken"

    def start(self, context):
        pass

    def act(self, obs, context):
        return np.array([np.nan, 0.0])


def test_a_fallback_that_gives_a_non_finite_action_raises_instead_of_returning_it(policy, monitor):
    agent = MonitoredPolicy(policy, monitor, num_samples=B, response=GradedResponse(fallback=NanFallback()),
                            context=FallbackContext(action_dim=2, position_dims=[0, 1]))
    with pytest.raises(FailSafeError, match=r"the fallback 'broken' gave no safe action at env step 5 \(this step: invalid observation"):
        drive(agent, 8, 5, BAD_OBS["nan"][0])


def test_a_hold_with_nothing_to_hold_raises_instead_of_guessing(policy, monitor):
    """A bad very first observation: no measured position and no executed action for the hold to keep."""
    with pytest.raises(FailSafeError, match=r"the fallback 'hold' gave no safe action at env step 0 \(this step: invalid"):
        drive(hold(policy, monitor), 2, 0, BAD_OBS["nan"][0])


class SensorDropout(gym.Wrapper):
    """The real task whose ``key`` reading goes missing at step ``at`` (a sensor fault)."""

    def __init__(self, env, key: str, at: int):
        super().__init__(env)
        self.key, self.at, self.t = key, at, 0

    def reset(self, **kwargs):
        self.t = 0
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, *rest = self.env.step(action)
        self.t += 1
        if self.t == self.at:
            obs = {k: v for k, v in obs.items() if k != self.key}
        return (obs, *rest)


def test_a_recorded_episode_keeps_the_fault_and_fills_the_unreadable_step(policy, monitor, tmp_path):
    env = SensorDropout(envs.make_env("push_t", max_episode_steps=12, terminate_on_success=False, terminate_on_failure=False), "object", 6)
    result = run_episode(env, hold(policy, monitor), seed=0)
    RolloutRecorder(tmp_path / "r.zarr", score_names=["ace"]).write(result.steps, result.decisions, result.labels)
    store = EpisodeStore.open(tmp_path / "r.zarr")
    ep, dec = store.episode(0), store.episode_decisions(0)
    assert dec["env_step"].tolist() == [0, 4, 6] and dec["failsafe"].tolist() == [False, False, True]
    assert "lacks ['object']" in dec["reason"][2] and np.isnan(dec["embedding"][2]).all()
    assert np.isnan(ep["object"][6]).all() and np.isfinite(np.delete(ep["object"], 6, axis=0)).all()
    assert np.isfinite(ep["action"]).all() and int(store.meta("first_alarm_step")[0]) == 6


# ---------------------------------------------------------------------------------------------- fuzzing
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(faults=st.lists(st.tuples(st.integers(1, 11), st.sampled_from(sorted(BAD_OBS))), max_size=4))
def test_fuzzed_observation_faults_never_yield_a_non_finite_action(policy, monitor, faults):
    """Any mix of bad observations at any steps (after a valid first one): finite actions only, and the first
    fault is the fail-safe decision that starts the fallback."""
    plan = dict(faults)
    agent = hold(policy, monitor)
    env = envs.make_env("push_t", max_episode_steps=100, terminate_on_success=False, terminate_on_failure=False)
    obs, _ = env.reset(seed=1)
    agent.reset(seed=1)
    for t in range(12):
        action = agent.act(BAD_OBS[plan[t]][0](obs) if t in plan else obs)
        assert action.shape == (2,) and np.isfinite(action).all()
        obs, *_ = env.step(action)
    if plan:
        first = min(plan)
        assert agent.decisions[-1].env_step == first and agent.decisions[-1].verdict.failsafe
        assert agent.fallback_active and BAD_OBS[plan[first]][1] in agent.decisions[-1].verdict.reason
    else:
        assert not agent.fallback_active


@pytest.mark.parametrize(("method", "kind", "says"), [
    ("encode", "batch_axis", "the policy's encode returned shape (6, 1, 16), expected (N, D) = (6, 16)"),
    ("encode", "numpy", "the policy's encode returned a numpy.ndarray, not a torch.Tensor"),
    ("sample", "flat", f"the policy's sample returned shape ({6 * B}, 8, 2), expected (N, B, H, A) = (6, {B}, 8, 2)"),
    ("sample", "numpy", "the policy's sample returned a numpy.ndarray, not a torch.Tensor"),
])
def test_replaying_decisions_names_a_malformed_policy_output(policy, tmp_path, method, kind, says):
    """launch.fit / launch.calibrate replaying a store through an adapter say what its output should have been."""
    from fiper.monitor.decisions import replay_decisions

    rng = np.random.default_rng(0)
    store = EpisodeStore.create(tmp_path / "demos.zarr")
    store.append_episode({"agent_pos": rng.normal(size=(6 * K, 2)).astype(np.float32),
                          "object": rng.normal(size=(6 * K, 4)).astype(np.float32),
                          "action": rng.normal(size=(6 * K, 2)).astype(np.float32)})
    with pytest.raises(ValueError, match=re.escape(says) + r".*docs/adapters.md"):
        replay_decisions(FaultyPolicy(policy, method, at=1, fault=kind), store, B, progress=False)
