"""A policy call that hangs ends in the fail-safe path within its deadline (DeadlinePolicy), the policy is never
called twice at a time, and a hung call does not keep the interpreter from exiting."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
import torch

from fiper.control import DeadlineExceeded, DeadlinePolicy, FailSafeError, MonitoredPolicy
from fiper.interventions import FallbackContext, GradedResponse, HoldPosition
from fiper.monitor.identity import PolicyIdentity
from pusht_policy import tiny_pusht_policy

B = 4
OBS = {"agent_pos": np.array([0.1, -0.2], np.float32), "object": np.array([0.0, 0.1, 0.2, 0.3], np.float32)}


@pytest.fixture(scope="module")
def policy():
    return tiny_pusht_policy()


class Stalling:
    """The real policy, whose ``encode`` blocks from its ``at``-th call until ``release`` is set (a driver that stops
    answering); records how many calls ran at once."""

    def __init__(self, policy, at: int):
        self.policy, self.at, self.calls, self.running, self.most = policy, at, 0, 0, 0
        self.release = threading.Event()

    def __getattr__(self, name):
        return getattr(self.policy, name)

    def fingerprint(self):
        from fiper.monitor.identity import policy_fingerprint

        return policy_fingerprint(self.policy)

    def encode(self, obs):
        self.calls += 1
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            if self.calls >= self.at:
                self.release.wait(30)
            return self.policy.encode(obs)
        finally:
            self.running -= 1


def hold_agent(policy, **kw):
    ctx = FallbackContext(action_dim=2, position_dims=[0, 1])
    return MonitoredPolicy(policy, None, response=GradedResponse(fallback=HoldPosition()), context=ctx, num_samples=B, **kw)


def test_a_hung_encode_ends_in_the_fallback_within_the_deadline_and_the_policy_is_never_called_twice_at_once(policy):
    stalling = Stalling(policy, at=2)
    agent = hold_agent(DeadlinePolicy(stalling, deadline_ms=200))
    agent.reset(seed=0)
    actions = [agent.act(OBS) for _ in range(4)]  # decision 1 runs normally and queues 4 actions
    assert not agent.fallback_active and np.isfinite(actions).all()
    start = time.perf_counter()
    action = agent.act(OBS)  # decision 2: encode hangs
    waited = time.perf_counter() - start
    assert waited < 5.0, f"act blocked {waited:.1f} s on a hung encode"
    info = agent.last_info
    assert info["failsafe"] and agent.fallback_active and "did not return within its deadline of 200 ms" in info["reason"]
    assert np.allclose(action, OBS["agent_pos"])  # the hold keeps the measured position
    agent.resume()  # the call is still hanging: the next decision is refused at once, not run beside it
    agent.act(OBS)
    assert agent.fallback_active and "has not returned yet" in agent.last_info["reason"]
    with pytest.raises(DeadlineExceeded, match="encode that overran its 200 ms deadline has not returned yet"):
        agent.policy.sample(None, B)
    assert stalling.most == 1 and stalling.calls == 2
    stalling.release.set()
    for _ in range(100):
        if not agent.policy.busy:
            break
        time.sleep(0.05)
    agent.resume()
    action = agent.act(OBS)  # the call returned: the policy decides again, its stale result discarded
    assert not agent.fallback_active and not agent.last_info["failsafe"] and np.isfinite(action).all()
    assert stalling.calls == 3 and agent.policy.overruns == 1


def test_without_a_fallback_a_hung_call_raises_failsafe_error_instead_of_blocking(policy):
    stalling = Stalling(policy, at=1)
    agent = MonitoredPolicy(DeadlinePolicy(stalling, deadline_ms=100), None, num_samples=B)
    agent.reset(seed=0)
    with pytest.raises(FailSafeError, match="deadline of 100 ms"):
        agent.act(OBS)
    stalling.release.set()


def test_within_its_deadline_the_wrapped_policy_decides_exactly_as_the_bare_one(policy):
    bare, timed = hold_agent(policy), hold_agent(DeadlinePolicy(policy, deadline_ms=10_000))
    runs = []
    for agent in (bare, timed):
        agent.reset(seed=3)
        runs.append(np.array([agent.act(OBS) for _ in range(8)]))
    assert np.array_equal(runs[0], runs[1])
    assert PolicyIdentity.of(DeadlinePolicy(policy, 50), B).fingerprint == PolicyIdentity.of(policy, B).fingerprint


class SlowStart(Stalling):
    """The real policy, whose first ``encode`` takes 0.5 s (a fresh process's first call), later ones as usual."""

    def encode(self, obs):
        self.calls += 1
        if self.calls == 1:
            time.sleep(0.5)
        return self.policy.encode(obs)


def test_warm_up_makes_the_slow_first_call_untimed_and_leaves_a_fresh_episode(policy):
    """A fresh process's first call overruns a deadline the later ones keep: without a warm-up the first decision ends in
    the fallback; after agent.warm_up(obs) it is the policy's, as in a bare run, and the deadline holds again."""
    cold = hold_agent(DeadlinePolicy(SlowStart(policy, at=0), deadline_ms=200))
    cold.reset(seed=3)
    cold.act(OBS)
    assert cold.last_info["failsafe"] and "deadline of 200 ms" in cold.last_info["reason"]
    slow = SlowStart(policy, at=0)
    warm, bare = hold_agent(DeadlinePolicy(slow, deadline_ms=200)), hold_agent(policy)
    warm.warm_up(OBS)
    assert slow.calls == 1 and warm.n_decisions == 0 and not warm.decisions and warm.env_step == 0  # a fresh episode
    for agent in (warm, bare):
        agent.reset(seed=3)
    assert np.array_equal([warm.act(OBS) for _ in range(6)], [bare.act(OBS) for _ in range(6)])
    assert not any(d.verdict.failsafe for d in warm.decisions if d.verdict is not None) and warm.policy.overruns == 0


class Modes:
    """Reports the autograd and inference modes its calls run in."""

    def encode(self, obs):
        return torch.is_grad_enabled(), torch.is_inference_mode_enabled()

    def sample(self, embedding, num_samples, **kwargs):
        raise ValueError(f"no sample of {num_samples}")


def test_the_callers_autograd_mode_and_errors_reach_the_worker_and_back():
    timed = DeadlinePolicy(Modes(), deadline_ms=10_000)
    assert timed.encode({}) == (True, False)
    with torch.no_grad():
        assert timed.encode({}) == (False, False)
    with torch.inference_mode():
        assert timed.encode({}) == (False, True)
    with pytest.raises(ValueError, match="no sample of 3"):  # the policy's own error, not a deadline
        timed.sample(None, 3)


@pytest.mark.parametrize("bad", [0, -5, float("nan"), float("inf"), True, "200"])
def test_a_deadline_that_is_no_positive_number_is_refused(policy, bad):
    with pytest.raises(ValueError, match="deadline_ms=.* is invalid"):
        DeadlinePolicy(policy, bad)


def test_a_call_that_never_returns_does_not_keep_the_interpreter_from_exiting():
    script = textwrap.dedent("""
        import threading
        from fiper.control import DeadlineExceeded, DeadlinePolicy

        class Never:
            def encode(self, obs):
                threading.Event().wait()

        try:
            DeadlinePolicy(Never(), 50).encode({})
        except DeadlineExceeded:
            print("fell back")
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "fell back" in out.stdout, out.stderr


class Waits:
    """encode returns at once, or, once ``hang`` is set, when ``release`` is set."""

    def __init__(self):
        self.hang, self.release = threading.Event(), threading.Event()

    def encode(self, obs):
        if self.hang.is_set():
            self.release.wait(30)
        return obs


def test_a_deadline_wrappers_thread_ends_once_the_wrapper_is_gone_even_after_a_hung_call():
    import gc

    calm, hung = DeadlinePolicy(Waits(), 5_000), DeadlinePolicy(Waits(), 30)
    threads = [calm._deadline._thread, hung._deadline._thread]
    assert calm.encode({"a": 1}) == {"a": 1}
    release = hung.policy.release
    hung.policy.hang.set()
    with pytest.raises(DeadlineExceeded):
        hung.encode({})
    del calm, hung
    gc.collect()
    threads[0].join(timeout=5)
    assert not threads[0].is_alive()
    assert threads[1].is_alive()  # still inside the hung call
    release.set()
    threads[1].join(timeout=5)
    assert not threads[1].is_alive()


class Sleeps:
    """A picklable stand-in policy: encode echoes its input after ``sleep_s``; resets are counted."""

    def __init__(self, sleep_s: float = 0.0):
        self.sleep_s, self.resets = sleep_s, 0

    def reset(self):
        self.resets += 1

    def encode(self, obs):
        time.sleep(self.sleep_s)
        return obs


def test_a_deadline_wrapper_copies_and_pickles_with_a_thread_of_its_own_and_a_copy_made_during_an_overrun_resets_first():
    import copy
    import pickle

    wrapped = DeadlinePolicy(Sleeps(), 5_000)
    for other in (copy.deepcopy(wrapped), pickle.loads(pickle.dumps(wrapped))):
        assert other._deadline._thread is not wrapped._deadline._thread and other._deadline._thread.is_alive()
        assert other.encode({"a": 1}) == {"a": 1} and other.deadline_ms == 5_000 and other.policy is not wrapped.policy
        assert other.policy.resets == 0 and other.overruns == 0
    slow = DeadlinePolicy(Sleeps(0.5), 30)
    with pytest.raises(DeadlineExceeded):
        slow.encode({})
    assert slow.busy
    other = pickle.loads(pickle.dumps(slow))  # the copied policy may hold the abandoned call's half-done state
    other.policy.sleep_s = 0.0
    assert not other.busy and other.overruns == 1
    assert other.encode({"b": 2}) == {"b": 2} and other.policy.resets == 1
    assert slow.policy.resets == 0
