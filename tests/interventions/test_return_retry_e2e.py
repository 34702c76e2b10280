"""ReturnAndRetry end to end in MuJoCo pick-and-place with the shipped policy (B = 8, medoid chunks) and
monitors fitted and calibrated on replayed expert demonstrations.

- A policy that gets stuck (closes the gripper on nothing and hovers until the timeout) is flagged by an
  elapsed-time monitor, returned to the nearest demonstration start pose with the gripper open, and
  restarted: a would-be failure becomes a success.
- Under the obstacle shift the unmonitored policy hits the obstacle; a k-NN embedding monitor sees the
  scene is new from the first decision, so every retry alarms again: the response returns twice, then
  holds — a safe stop with its retries counted and no damage event (it does not turn these into
  successes: the obstacle is still there).
- Injected alarms bound the retries exactly, and faults inside the return (NaN in the path, NaN in an
  observation) end in the hold with finite actions.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import envs
from calibration import Threshold
from fiper.collection import collect
from fiper.control import MonitoredPolicy, run_episode
from fiper.interventions import FallbackContext, ReturnAndRetry, response_from_config
from fiper.monitor import FailureMonitor
from fiper.monitor.decision_data import load_decisions
from fiper.monitor.fitting import fit_monitor
from fiper.storage import EpisodeStore
from policies import load_policy

B, K = 8, 4  # samples per decision; env steps per decision (the shipped policy's n_action_steps)
DAMAGE = {"off_table", "dropped", "obstacle_collision", "tipped_over"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """The shipped policy; 10 expert demos; an elapsed-time and a k-NN monitor fitted + calibrated on their replay."""
    root = tmp_path_factory.mktemp("return_retry")
    policy = load_policy("launch/checkpoints/pick_place_diffusion_mlp", device="cpu")
    env = envs.make_env("pick_place")
    store = EpisodeStore.create(root / "demos.zarr")
    collect(env, envs.make_expert(env), store, 10, seed=1000, progress=False)
    data, identity = load_decisions(EpisodeStore.open(root / "demos.zarr"), policy=policy, num_samples=B)
    monitors = {}
    for name, score in {"elapsed": {"score": "elapsed"}, "knn": {"score": "knn", "k": 3}}.items():
        monitor = fit_monitor(data, identity, scores={name: score}, windows={name: 1}, rule="single")
        monitor.calibrate(monitor.score_offline(data.embeddings, data.samples, data.decision_ends), data.decision_ends,
                          delta=0.1, threshold_type="constant")
        monitors[name] = monitor
    return root, policy, monitors


def context() -> FallbackContext:
    return FallbackContext(action_dim=4, position_dims=[0, 1, 2], gripper_dims=[3])


def episode(policy, monitor, response, seed, shifts=(), **env_kwargs):
    env = envs.make_env("pick_place", shifts=list(shifts), **env_kwargs)
    agent = MonitoredPolicy(policy, monitor, response=response, context=context() if response else None,
                            num_samples=B, execute="medoid")
    return run_episode(env, agent, seed=seed)


def alarm_at(monitor: FailureMonitor, decision: float) -> FailureMonitor:
    """The elapsed monitor with a threshold that alarms from the ``decision``-th decision of every (re)start."""
    th = {n: Threshold("constant", 0.1, np.array([decision - 0.5]), 10, False) for n in monitor.names}
    return FailureMonitor(monitor.scores, monitor.identity, windows=monitor.windows, rule=monitor.rule, thresholds=th)


def held_still(result, after_step, settle=5):
    """Largest hand movement (m) once the fallback has held for ``settle`` steps."""
    pos = result.steps["agent_pos"][after_step + settle:, :3]
    return float(np.linalg.norm(pos - pos[0], axis=1).max()) if len(pos) > 1 else 0.0


def test_return_to_start_turns_a_stuck_episode_into_a_success(setup):
    root, policy, monitors = setup
    bare = episode(policy, None, None, seed=10)
    assert bare.labels["failure_reason"] == "timeout", "seed 10: the unmonitored policy closes on nothing and hovers"
    assert bare.steps["agent_pos"][60:, 3].min() > 0.5  # the fingers stay closed: it never tries again by itself
    response = ReturnAndRetry("start", demos=str(root / "demos.zarr"), gripper="start", max_retries=2)
    r = episode(policy, monitors["elapsed"], response, seed=10)
    assert r.labels["success"] and r.labels["failure_reason"] not in DAMAGE, r.labels
    assert response.retries == 1 and response.events == ["return 1/2: to the nearest demonstration start pose",
                                                          "resume after return 1"]
    back = next(d.env_step for d in r.decisions if d.intervention == "fallback:return_retry")
    assert back < len(r.steps["action"]) - 10 and np.isfinite(r.steps["action"]).all()


def test_obstacle_collision_becomes_a_safe_stop_after_bounded_retries(setup):
    _, policy, monitors = setup
    shifts = [("obstacle", 0.5)]
    hits = [s for s in range(5) if episode(policy, None, None, s, shifts).labels["failure_reason"] == "obstacle_collision"]
    assert len(hits) >= 2, "the unmonitored policy should hit the obstacle on some of seeds 0-4"
    for seed in hits[:2]:
        response = response_from_config({"kind": "return_retry", "target": "path", "max_retries": 2, "fallback": {"name": "hold"}})
        r = episode(policy, monitors["knn"], response, seed, shifts)
        labels = [d.intervention for d in r.decisions]
        assert r.labels["failure_reason"] == "timeout" and not r.labels["success"]  # stopped safely, never touched it
        assert response.retries == 2 and labels.count("fallback:return_retry") == 2 and labels[-1] == "fallback:hold"
        assert response.events[-1] == "fallback: alarm after 2 of 2 retries"
        assert held_still(r, r.decisions[-1].env_step) < 0.005


def test_injected_alarms_return_to_the_last_in_distribution_decision_and_stop_after_the_retries(setup):
    _, policy, monitors = setup
    response = ReturnAndRetry("path", max_retries=2, tolerance=0.01, settle_steps=10)
    r = episode(policy, alarm_at(monitors["elapsed"], 3), response, seed=1, terminate_on_success=False, max_episode_steps=60)
    decisions = [(d.env_step, d.intervention) for d in r.decisions]
    returns = [s for s, label in decisions if label == "fallback:return_retry"]
    assert len(returns) == 2 and decisions[-1][1] == "fallback:hold" and response.retries == 2
    # every (re)start: decisions 0, 1, 2 plain, decision 3 alarms (the monitor's clock restarted with the policy)
    starts = [0] + [next(s for s, _ in decisions if s > a) for a in returns]
    for start, end in zip(starts, returns + [decisions[-1][0]]):
        assert end - start == 3 * K
    actions, pos = r.steps["action"], r.steps["agent_pos"][:, :3]
    for start, back in zip(starts[:2], starts[1:]):
        goal = actions[start + 2 * K - 1, :3]  # commanded just before decision 2, the last judged in distribution
        assert np.linalg.norm(pos[back] - goal) < 0.015, (back, pos[back], goal)
    assert held_still(r, decisions[-1][0]) < 0.005 and np.isfinite(actions).all()


def test_faults_inside_the_return_end_in_the_hold(setup):
    _, policy, monitors = setup
    env = envs.make_env("pick_place", terminate_on_success=False, terminate_on_failure=False)
    response = ReturnAndRetry("path", max_retries=2)
    agent = MonitoredPolicy(policy, alarm_at(monitors["elapsed"], 3), response=response, context=context(),
                            num_samples=B, execute="medoid")
    obs, _ = env.reset(seed=2)
    agent.reset(seed=2)
    actions = []
    for t in range(40):
        if t == 3 * K - 1:
            agent.context.actions[-3][1] = np.nan  # a corrupt record in the path the return will walk back along
        actions.append(agent.act(obs))
        obs, *_ = env.step(actions[-1])
    assert agent.last_info["fallback_active"] and response.mode == "fallback" and response.retries == 1
    assert "non-finite" in response.events[-1] and np.isfinite(actions).all()
    assert np.allclose(actions[-1], actions[3 * K + 1])  # the hold latched at the step the return failed
    # a NaN observation in the middle of a return: the wrapper refuses it, the response holds
    response = ReturnAndRetry("path", max_retries=2)
    agent = MonitoredPolicy(policy, alarm_at(monitors["elapsed"], 3), response=response, context=context(),
                            num_samples=B, execute="medoid")
    obs, _ = env.reset(seed=2)
    agent.reset(seed=2)
    actions = []
    for t in range(30):
        if t == 3 * K + 1:
            obs = {**obs, "agent_pos": np.full(4, np.nan, np.float32)}
        actions.append(agent.act(obs))
        obs, *_ = env.step(actions[-1])
    assert response.mode == "fallback" and "fail-safe during the return: invalid observation" in response.events[-1]
    assert np.isfinite(actions).all() and np.allclose(actions[-1], actions[3 * K + 2])
