"""A monitor step that hangs (a score of one's own blocking on a lock or a remote call) ends in the fail-safe path
within its deadline (DeadlineMonitor), the monitor never runs two steps at once, and monitoring resumes with
windows that hold nothing of the abandoned step."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from calibration import Threshold
from fiper.control import DeadlineMonitor, DeadlinePolicy, FailSafeError, MonitoredPolicy
from fiper.interventions import FallbackContext, GradedResponse, HoldPosition
from fiper.monitor import FailureMonitor, PolicyIdentity
from fiper.scores import ScoreFitData
from fiper.scores.base import ScoreBase
from pusht_policy import tiny_pusht_policy

B, K, WINDOW = 4, 4, 3  # samples per decision, env steps per decision, the score's window in decisions
DEADLINE_MS = 50
OBS = {"agent_pos": np.array([0.1, -0.2], np.float32), "object": np.array([0.0, 0.1, 0.2, 0.3], np.float32)}


class Blocking(ScoreBase):
    """A score of one's own with history: the batch's mean |action| plus how many decisions it has seen this
    episode. Its ``block_at``-th step overall blocks until ``release`` is set, after moving its history on (what
    an abandoned step leaves behind); it records how many of its steps ran at once."""

    name = "blocking_for_deadline_test"
    needs = frozenset({"samples"})
    backend = "numpy"

    def __init__(self, block_at: int | None = None):
        super().__init__()
        self.block_at, self.release = block_at, threading.Event()
        self.calls = self.running = self.most = 0

    def _fit(self, embeddings, samples, decision_ends, seed):
        pass

    def _score(self, embeddings, samples):
        return np.abs(samples).mean(axis=(1, 2, 3))

    def reset(self):
        self.seen = 0

    def _step(self, embedding, samples):
        self.calls += 1
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            self.seen += 1
            if self.calls == self.block_at:
                self.release.wait(30)
            return float(np.abs(samples).mean()) + self.seen
        finally:
            self.running -= 1


@pytest.fixture(scope="module")
def policy():
    return tiny_pusht_policy()


def blocking_monitor(policy, block_at=None) -> FailureMonitor:
    """A calibrated single-score monitor over ``Blocking``, thresholds high enough never to alarm."""
    rng = np.random.default_rng(0)
    data = ScoreFitData(rng.normal(size=(6, policy.embedding_dim)).astype(np.float32),
                        rng.normal(size=(6, B, policy.horizon, policy.action_dim)).astype(np.float32), np.array([3, 6]))
    score = Blocking(block_at).fit(data)
    return FailureMonitor({"gate": score}, PolicyIdentity.of(policy, B), windows={"gate": WINDOW}, rule="single",
                          thresholds={"gate": Threshold("constant", 0.2, [1e12], 10, True)})


def hold_agent(policy, monitor):
    ctx = FallbackContext(action_dim=2, position_dims=[0, 1])
    return MonitoredPolicy(policy, monitor, response=GradedResponse(fallback=HoldPosition()), context=ctx)


def wait_until_returned(wrapped: DeadlineMonitor) -> None:
    for _ in range(200):
        if not wrapped.busy:
            return
        time.sleep(0.025)
    raise AssertionError("the released step did not return")


def assert_scored_as_a_fresh_monitor(policy, decisions) -> None:
    """The decisions' verdicts equal a fresh monitor's on their recorded batches: windows from empty, count from 0."""
    reference = blocking_monitor(policy)
    for t, decision in enumerate(decisions):
        expected = reference.step(decision.embedding, decision.samples)
        verdict = decision.verdict
        assert not verdict.failsafe and verdict.decision == t == expected.decision
        assert verdict.scores == pytest.approx(expected.scores, abs=1e-9)
        assert verdict.windowed == pytest.approx(expected.windowed, abs=1e-9)
    assert decisions[0].verdict.windowed["gate"] == pytest.approx(decisions[0].verdict.scores["gate"])  # one decision in it


def test_a_hung_monitor_step_ends_in_the_fallback_and_monitoring_resumes_with_fresh_windows(policy):
    monitor = DeadlineMonitor(blocking_monitor(policy, block_at=3), deadline_ms=DEADLINE_MS)
    score = monitor.scores["gate"]
    agent = hold_agent(policy, monitor)
    agent.reset(seed=0)
    actions = [agent.act(OBS) for _ in range(2 * K)]  # decisions 1 and 2 are monitored
    assert not agent.fallback_active and np.isfinite(actions).all() and score.calls == 2
    start = time.perf_counter()
    action = agent.act(OBS)  # decision 3: the score blocks
    assert time.perf_counter() - start < 5.0  # the deadline, not the 30 s the score waits
    info = agent.last_info
    assert info["failsafe"] and agent.fallback_active and info["intervention"] == "fallback:hold"
    assert info["reason"] == (f"fail-safe: the monitor raised DeadlineExceeded: the monitor's step did not return within "
                              f"its deadline of {DEADLINE_MS} ms; give the monitor more time (a larger deadline_ms), or find "
                              "what blocks its scores (a lock, a remote call, a device; verdict.score_ms times each score); "
                              "the fallback acts meanwhile")
    assert np.array_equal(action, OBS["agent_pos"])  # the hold keeps the measured position: never NaN
    held = [agent.act(OBS) for _ in range(2 * K)]  # the loop goes on while the step still hangs
    assert all(np.array_equal(a, OBS["agent_pos"]) for a in held) and monitor.busy
    agent.resume()  # the step still hangs: the next decision's step is refused at once, not run beside it
    agent.act(OBS)
    assert agent.fallback_active and agent.last_info["failsafe"]
    assert f"the monitor's step that overran its {DEADLINE_MS} ms deadline has not returned yet" in agent.last_info["reason"]
    assert score.calls == 3 and score.most == 1 and monitor.overruns == 1
    score.release.set()
    wait_until_returned(monitor)
    agent.resume()
    resumed = len(agent.decisions)
    actions = [agent.act(OBS) for _ in range(3 * K)]
    assert not agent.fallback_active and np.isfinite(actions).all() and len(agent.decisions) == resumed + 3
    assert_scored_as_a_fresh_monitor(policy, agent.decisions[resumed:])
    assert score.most == 1 and score.calls == 6


def test_a_new_episode_begun_while_the_step_hangs_gets_nothing_of_it(policy):
    monitor = DeadlineMonitor(blocking_monitor(policy, block_at=2), deadline_ms=DEADLINE_MS)
    score = monitor.scores["gate"]
    agent = hold_agent(policy, monitor)
    agent.reset(seed=0)
    for _ in range(K + 1):
        agent.act(OBS)
    assert agent.last_info["failsafe"] and monitor.busy
    agent.reset(seed=1)  # the monitor's reset waits for the hung step, which has moved its history on already
    assert monitor.busy and score.seen == 2
    score.release.set()
    wait_until_returned(monitor)
    actions = [agent.act(OBS) for _ in range(3 * K)]
    assert np.isfinite(actions).all() and len(agent.decisions) == 3
    assert_scored_as_a_fresh_monitor(policy, agent.decisions)


def test_without_a_fallback_a_hung_step_raises_failsafe_error_instead_of_blocking(policy):
    monitor = DeadlineMonitor(blocking_monitor(policy, block_at=1), deadline_ms=DEADLINE_MS)
    agent = MonitoredPolicy(policy, monitor)
    agent.reset(seed=0)
    with pytest.raises(FailSafeError, match=f"the monitor's step did not return within its deadline of {DEADLINE_MS} ms"):
        agent.act(OBS)
    monitor.scores["gate"].release.set()


def test_within_its_deadline_the_wrapped_monitor_decides_exactly_as_the_bare_one(policy):
    runs = []
    for wrap in (lambda m: m, lambda m: DeadlineMonitor(m, deadline_ms=10_000)):
        agent = hold_agent(policy, wrap(blocking_monitor(policy)))
        agent.reset(seed=3)
        actions = np.array([agent.act(OBS) for _ in range(3 * K)])
        runs.append((actions, [d.verdict for d in agent.decisions]))
    assert np.array_equal(runs[0][0], runs[1][0]) and runs[0][1] == runs[1][1] and len(runs[0][1]) == 3


@pytest.mark.parametrize("bad", [0, -5, float("nan"), float("inf"), True, "50"])
def test_a_deadline_that_is_no_positive_number_is_refused(policy, bad):
    with pytest.raises(ValueError, match=r"deadline_ms=.* is invalid: give a positive, finite number of milliseconds for each step of the monitor"):
        DeadlineMonitor(blocking_monitor(policy), bad)


def test_what_is_no_bare_monitor_is_refused_naming_the_fix(policy):
    monitor = DeadlineMonitor(blocking_monitor(policy), 50)
    with pytest.raises(ValueError, match=r"already under a deadline of 50 ms: wrap the bare monitor once"):
        DeadlineMonitor(monitor, 100)
    with pytest.raises(TypeError, match=r"wraps a FailureMonitor \(load_monitor\(...\) or fit_monitor\(...\)\), got DiffusionPolicy"):
        DeadlineMonitor(policy, 50)
    with pytest.raises(TypeError, match=r"a policy goes under DeadlinePolicy\(policy, deadline_ms\)"):
        DeadlineMonitor(DeadlinePolicy(policy, 50), 50)
    with pytest.raises(ValueError, match=r"already under a deadline of 50 ms: wrap the bare policy once"):
        DeadlinePolicy(DeadlinePolicy(policy, 50), 100)
