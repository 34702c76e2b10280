"""ReturnAndRetry on hand-built contexts with a simulated first-order robot: where it returns, how often, and
that every fault ends in its fallback. The MuJoCo end-to-end runs are in test_return_retry_e2e.py."""

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from fiper.interventions import FallbackContext, HoldPosition, ReturnAndRetry, StartPoses, Stop, response_from_config
from fiper.storage import EpisodeStore

POS, GRIP, K = (0, 1, 2), (3,), 4  # x, y, z targets and a gripper; a decision every K steps
PRESET = Path(__file__).resolve().parents[2] / "launch" / "conf" / "response" / "return_retry.yaml"


class Robot:
    """Tracks position targets with a lag (gain 0.6 per step), no noise."""

    def __init__(self, pos=(0.0, 0.0, 0.1)):
        self.pos = np.asarray(pos, dtype=float)

    def obs(self):
        return {"agent_pos": np.concatenate([self.pos, [0.0]])}

    def step(self, action):
        self.pos = self.pos + 0.6 * (np.asarray(action[:3]) - self.pos)


def targets(n, start=(0.0, 0.0, 0.1)):
    """A curved path of n position targets from ``start``, gripper 0.8 (closed on something)."""
    s = np.arange(1, n + 1) / n
    path = np.asarray(start) + np.stack([0.3 * s, 0.1 * np.sin(3 * s), 0.05 * s], axis=1)
    return np.concatenate([path, np.full((n, 1), 0.8)], axis=1)


def drive(response, ctx, robot, plan, ratios, alarm_at=None):
    """Play ``plan`` as the policy would: a decision (``response.step``) every K steps with ``ratios[i]``.

    Stops at the decision that returns a fallback label; returns that label and the targets executed before it.
    """
    label = "none"
    for t, a in enumerate(plan):
        if t % K == 0:
            i = t // K
            label = response.step(alarm_at is not None and i >= alarm_at, ratios[i])
            if label != "none":
                return label, t
        ctx.record(a, robot.obs())
        robot.step(a)
    return label, len(plan)


def follow(response, ctx, robot, max_steps=200):
    """Run the response's actions until it is ready to resume (or max_steps); returns the actions."""
    out = []
    for _ in range(max_steps):
        obs = robot.obs()
        a = response.fallback_action(obs, ctx)
        ctx.record(a, obs)
        robot.step(a)
        out.append(a)
        if response.ready_to_resume():
            break
    return np.array(out)


def setup(**kw):
    ctx = FallbackContext(action_dim=4, position_dims=POS, gripper_dims=GRIP)
    response = ReturnAndRetry(**kw)
    response.bind_context(ctx)
    return response, ctx, Robot()


def test_path_return_walks_back_to_the_last_decision_judged_in_distribution():
    response, ctx, robot = setup()
    plan = targets(24)
    # decisions 0..5 at steps 0, 4, ..., 20: ratios below 1 up to decision 2, then above 1 without an alarm, alarm at 5
    label, t = drive(response, ctx, robot, plan, [0.2, 0.5, 0.9, 1.3, 1.8, 2.5], alarm_at=5)
    assert (label, t) == ("fallback:return_retry", 20) and response.retries == 1
    actions = follow(response, ctx, robot)
    # the last in-distribution decision was decision 2 at step 8: the target commanded just before it was plan[7]
    goal = plan[7, :3]
    assert np.allclose(actions[-1, :3], goal)
    assert np.linalg.norm(robot.pos - goal) <= 0.01 and response.ready_to_resume()
    # newest to oldest along the executed targets, gripper as last commanded
    back = actions[1:-1, :3]
    hits = [int(np.flatnonzero(np.isclose(plan[:, :3], p).all(1))[0]) for p in back if np.isclose(plan[:, :3], p).all(1).any()]
    assert len(hits) >= 10 and np.all(np.diff(hits) < 0) and hits[-1] == 7
    assert np.all(actions[:, 3] == 0.8)
    assert response.events == ["return 1/2: to the last decision judged in distribution"]
    response.resumed()
    assert response.mode == "none" and response.retries == 1


def test_decisions_back_and_a_stricter_in_distribution_ratio_pick_earlier_states():
    plan = targets(24)
    response, ctx, robot = setup(decisions_back=4)
    drive(response, ctx, robot, plan, [0.2] * 6, alarm_at=5)
    actions = follow(response, ctx, robot)
    assert np.allclose(actions[-1, :3], plan[3, :3])  # decision 1 at step 4: four decisions before the alarm
    response, ctx, robot = setup(in_distribution_below=0.3)
    drive(response, ctx, robot, plan, [0.2, 0.5, 0.2, 0.4, 0.5, 0.5], alarm_at=5)
    actions = follow(response, ctx, robot)
    assert np.allclose(actions[-1, :3], plan[7, :3])  # decision 2 is the last with ratio < 0.3


def test_max_steps_bounds_how_long_a_return_takes():
    response, ctx, robot = setup(max_steps=6, settle_steps=0)
    start = robot.pos.copy()
    plan = targets(40)
    drive(response, ctx, robot, plan, [1.5] * 10, alarm_at=9)
    actions = follow(response, ctx, robot)
    assert len(actions) <= 7 and np.allclose(actions[5, :3], start)  # 36 recorded targets re-spaced to 6 points
    steps = np.linalg.norm(np.diff(actions[:6, :3], axis=0), axis=1)
    assert np.allclose(steps, steps.mean(), rtol=0.3)  # evenly along the path


def test_path_return_with_nothing_judged_in_distribution_goes_back_to_the_episode_start():
    response, ctx, robot = setup()
    start = robot.pos.copy()
    drive(response, ctx, robot, targets(16), [1.5, 1.5, 1.5, 2.0], alarm_at=3)
    follow(response, ctx, robot)
    assert np.linalg.norm(robot.pos - start) <= 0.01
    assert response.events[-1] == "return 1/2: to the start of the segment"


def test_after_a_resume_a_second_return_stays_within_the_new_segment():
    response, ctx, robot = setup(max_retries=2)
    drive(response, ctx, robot, targets(16), [0.2, 0.2, 1.5, 2.0], alarm_at=3)
    follow(response, ctx, robot)
    response.resumed()
    resumed_at = robot.pos.copy()
    # the policy drives elsewhere; nothing it does there is judged in distribution; the alarm sends it back
    drive(response, ctx, robot, targets(16, start=resumed_at), [1.5, 1.5, 1.5, 2.0], alarm_at=3)
    assert np.linalg.norm(robot.pos - resumed_at) > 0.1
    follow(response, ctx, robot)
    assert response.retries == 2 and np.linalg.norm(robot.pos - resumed_at) <= 0.01


def test_retries_are_bounded_and_the_fallback_holds_after_them():
    response, ctx, robot = setup(max_retries=2, fallback=Stop())
    labels = []
    for _ in range(3):
        label, _ = drive(response, ctx, robot, targets(8, start=robot.pos), [0.2, 2.0], alarm_at=1)
        labels.append(label)
        if label == "fallback:return_retry":
            follow(response, ctx, robot)
            response.resumed()
    assert labels == ["fallback:return_retry", "fallback:return_retry", "fallback:stop"] and response.retries == 2
    held = np.array([response.fallback_action(robot.obs(), ctx) for _ in range(5)])
    assert np.all(held == ctx.last_action) and not response.ready_to_resume()
    assert response.events[-1] == "fallback: alarm after 2 of 2 retries"
    assert response.step(False, 0.1) == "fallback:stop"  # latched until reset
    response.reset()
    assert response.retries == 0 and response.mode == "none" and response.step(True, 2.0) == "fallback:return_retry"
    zero, ctx, robot = setup(max_retries=0)
    assert drive(zero, ctx, robot, targets(8), [0.2, 2.0], alarm_at=1)[0] == "fallback:hold"


def test_every_fault_in_the_return_ends_in_the_fallback_with_a_finite_action():
    plan = targets(24)
    # NaN in the executed path the return walks back along
    response, ctx, robot = setup()
    drive(response, ctx, robot, plan, [0.2, 0.5, 0.9, 1.3, 1.8, 2.5], alarm_at=5)
    ctx.actions[-5][1] = np.nan
    action = response.fallback_action(robot.obs(), ctx)
    assert np.isfinite(action).all() and response.fallback_label == "fallback:hold"
    assert np.allclose(action[:3], robot.pos) and "non-finite" in response.events[-1]
    # a refused observation mid-return (the wrapper passes its reason)
    response, ctx, robot = setup()
    drive(response, ctx, robot, plan, [0.2] * 6, alarm_at=5)
    response.fallback_action(robot.obs(), ctx)
    assert not response.ready_to_resume("invalid observation: obs['agent_pos'] holds 1 NaN")
    assert response.mode == "fallback" and "invalid observation" in response.events[-1]
    assert np.isfinite(response.fallback_action(robot.obs(), ctx)).all()
    # a non-finite ratio and a fail-safe alarm from the wrapper
    response, ctx, robot = setup()
    assert response.step(False, float("nan")) == "fallback:hold"
    response, _, _ = setup()
    assert response.fail_safe() == "fallback:hold" and response.retries == 0 and response.labels == ["fallback:hold"]
    # no context bound: no return without the action layout
    unbound = ReturnAndRetry()
    assert unbound.step(True, 2.0) == "fallback:hold" and "no FallbackContext" in unbound.events[-1]


def test_start_target_goes_to_the_nearest_demo_start_pose_at_the_given_speed(tmp_path):
    store = EpisodeStore.create(tmp_path / "demos.zarr")
    starts = [[0.05, 0.0, 0.15, 0.0], [0.3, 0.2, 0.15, 0.0], [-0.2, 0.1, 0.12, 0.0], [0.06, 0.0, 0.15, 0.0]]
    meta = [dict(success=True, shift="none"), dict(success=True, shift="none"), dict(success=True, shift="none"),
            dict(success=False, shift="none")]  # a failed demo's start is not learned
    for start, m in zip(starts, meta):
        pos = np.asarray(start) + np.linspace(0, 0.1, 5)[:, None] * [1, 0, 0, 0]
        store.append_episode({"agent_pos": pos, "action": np.tile([0.0, 0.0, 0.1, 0.05], (5, 1))}, meta=m)
    poses = StartPoses.from_store(tmp_path / "demos.zarr")
    assert np.allclose(poses.rows, np.asarray(starts[:3])) and poses.actions.shape == (3, 4)
    response, ctx, robot = setup(target="start", demos=str(tmp_path / "demos.zarr"), speed=0.01, gripper="start")
    plan = targets(20)  # ends near (0.3, 0.0, 0.15): nearest start is the second demo's (0.3, 0.2, 0.15)
    drive(response, ctx, robot, plan, [0.2] * 5, alarm_at=4)
    actions = follow(response, ctx, robot)
    assert np.allclose(actions[-1, :3], starts[1][:3]) and np.linalg.norm(robot.pos - starts[1][:3]) <= 0.01
    assert np.linalg.norm(np.diff(actions[:, :3], axis=0), axis=1).max() <= 0.01 + 1e-9
    assert np.all(actions[:, 3] == 0.05)  # the demos' first gripper command, from the first step
    assert response.events == ["return 1/2: to the nearest demonstration start pose"]
    # without speed it moves at the policy's own pace: the median step of the executed targets
    response, ctx, robot = setup(target="start", start_poses=[[0.0, 0.0, 0.1]])
    drive(response, ctx, robot, plan, [0.2] * 5, alarm_at=4)
    actions = follow(response, ctx, robot)
    pace = np.median(np.linalg.norm(np.diff(plan[:16, :3], axis=0), axis=1))
    steps = np.linalg.norm(np.diff(actions[:-1, :3], axis=0), axis=1)
    assert np.allclose(steps[1:-1], pace, rtol=1e-6) and np.allclose(actions[-1, :3], 0.0 + np.array([0, 0, 0.1]))


def test_start_poses_are_read_from_the_key_the_context_measures(tmp_path):
    store = EpisodeStore.create(tmp_path / "flat.zarr")  # a flat observation: the position is obs[0:3]
    for start in ([0.1, 0.0, 0.15], [0.3, 0.2, 0.15]):
        obs = np.concatenate([np.tile(start, (5, 1)), np.zeros((5, 6))], axis=1)
        store.append_episode({"obs": obs, "action": np.zeros((5, 4))}, meta=dict(success=True, shift="none"))
    response = ReturnAndRetry(target="start", demos=str(tmp_path / "flat.zarr"))
    response.bind_context(FallbackContext(action_dim=4, position_dims=POS, gripper_dims=GRIP, agent_pos_key="obs",
                                          agent_pos_dims=(0, 1, 2)))
    assert np.allclose(response.start_poses.positions((0, 1, 2)), [[0.1, 0.0, 0.15], [0.3, 0.2, 0.15]])
    with pytest.raises(KeyError, match=r"no data key 'agent_pos'.*set start_key \(or context.agent_pos_key\)"):
        ReturnAndRetry(target="start", demos=str(tmp_path / "flat.zarr")).bind_context(
            FallbackContext(action_dim=4, position_dims=POS, gripper_dims=GRIP))
    explicit = ReturnAndRetry(target="start", demos=str(tmp_path / "flat.zarr"), start_key="obs")  # read at once
    assert explicit.start_poses.rows.shape == (2, 9)


def test_a_second_start_return_right_after_a_resume_moves_at_the_episodes_pace():
    response, ctx, robot = setup(target="start", start_poses=[[0.0, 0.0, 0.1]], max_retries=2)
    plan = targets(20)
    drive(response, ctx, robot, plan, [0.2] * 5, alarm_at=4)
    follow(response, ctx, robot)
    response.resumed()
    robot.pos = robot.pos + [0.2, 0.0, 0.0]  # pushed away; the first decision after the resume alarms at once
    assert response.step(True, 2.0) == "fallback:return_retry"
    actions = follow(response, ctx, robot)
    assert response.mode == "return" and response.ready_to_resume() and len(actions) > 5
    assert np.linalg.norm(robot.pos - [0.0, 0.0, 0.1]) <= 0.01


def test_velocity_actions_replay_negated_velocities_and_refuse_a_start_pose():
    ctx = FallbackContext(action_dim=2, position_dims=(0, 1), action_mode="velocity", agent_pos_key=None)
    response = ReturnAndRetry()
    response.bind_context(ctx)
    vel = np.array([[0.1, 0.0], [0.1, 0.05], [0.0, 0.2], [0.05, 0.05]])
    response.step(False, 0.2)
    for v in vel[:2]:
        ctx.record(v)
    response.step(False, 0.2)
    for v in vel[2:]:
        ctx.record(v)
    assert response.step(True, 2.0) == "fallback:return_retry"
    out = [response.fallback_action({}, ctx) for _ in range(3)]
    assert np.allclose(out, [-vel[3], -vel[2], [0, 0]]) and response.ready_to_resume()
    with pytest.raises(ValueError, match="action_mode='position'"):
        ReturnAndRetry(target="start", start_poses=[[0.0, 0.0]]).bind_context(ctx)


def test_settings_are_checked_with_the_fix_named():
    with pytest.raises(ValueError, match="target='start' needs the demonstrations' start poses"):
        ReturnAndRetry(target="start")
    with pytest.raises(ValueError, match="with target='start' only"):
        ReturnAndRetry(start_poses=[[0.0, 0.0]])
    with pytest.raises(ValueError, match="max_retries=-1 is invalid"):
        ReturnAndRetry(max_retries=-1)
    with pytest.raises(ValueError, match="gripper='start'.*demos="):
        ReturnAndRetry(target="start", start_poses=[[0.0, 0.0]], gripper="start")
    with pytest.raises(ValueError, match=r"rows \[1\] hold NaN"):
        StartPoses([[0.0, 0.0], [np.nan, 0.0]])
    with pytest.raises(FileNotFoundError, match="demos='missing.zarr' does not exist"):
        ReturnAndRetry(target="start", demos="missing.zarr")
    ctx = FallbackContext(action_dim=4, position_dims=POS, gripper_dims=GRIP)
    with pytest.raises(ValueError, match="agent_pos_dims=.*index past them"):
        ReturnAndRetry(target="start", start_poses=[[0.0, 0.0]]).bind_context(ctx)


def test_the_preset_and_config_dicts_build_it_by_kind():
    response = response_from_config(OmegaConf.to_container(OmegaConf.load(PRESET)))
    assert isinstance(response, ReturnAndRetry) and response.target == "path" and response.max_retries == 2
    assert isinstance(response.fallback, HoldPosition)
    built = response_from_config({"kind": "return_retry", "target": "start", "start_poses": [[0.0, 0.0, 0.1]],
                                  "max_retries": 1, "fallback": {"name": "stop"}})
    assert built.target == "start" and built.max_retries == 1 and isinstance(built.fallback, Stop)
    with pytest.raises(ValueError, match=r"unknown return_retry settings \['retires'\]"):
        response_from_config({"kind": "return_retry", "retires": 3})
    with pytest.raises(KeyError, match=r"unknown response 'rewind'; known responses: \['graded', 'return_retry'\]"):
        response_from_config({"kind": "rewind"})


RATIOS = st.one_of(st.floats(0.0, 3.0), st.sampled_from([float("nan"), float("inf")]))


@settings(max_examples=60, deadline=None)
@given(decisions=st.lists(st.tuples(st.booleans(), RATIOS, st.integers(1, 6)), min_size=1, max_size=25),
       target=st.sampled_from(["path", "start"]), max_retries=st.integers(0, 3), back=st.sampled_from([None, 1, 3]),
       faults=st.sets(st.integers(0, 200), max_size=3), seed=st.integers(0, 2**16))
def test_any_sequence_of_verdicts_gives_finite_actions_and_bounded_retries(decisions, target, max_retries, back, faults, seed):
    """Whatever the monitor says and whichever steps the wrapper refuses an observation on: every action is
    finite, returns never exceed max_retries, and once the fallback takes over it keeps control."""
    rng = np.random.default_rng(seed)
    kw = {"start_poses": [[0.0, 0.0, 0.1], [0.2, -0.1, 0.15]]} if target == "start" else {"decisions_back": back}
    response, ctx, robot = setup(target=target, max_retries=max_retries, max_steps=8, **kw)
    step, fallen = 0, False
    for alarm, ratio, n_steps in decisions:
        label = response.step(alarm, ratio)
        fallen = fallen or label == "fallback:hold"
        assert response.retries <= max_retries and (not fallen or response.mode == "fallback")
        for _ in range(n_steps if label == "none" else 12):
            obs = robot.obs()
            if label == "none":
                a = np.concatenate([robot.pos + rng.normal(0, 0.02, 3), [0.8]])
            else:
                a = response.fallback_action(obs, ctx)
                assert np.isfinite(a).all() and a.shape == (4,)
            ctx.record(a, obs)
            robot.step(a)
            step += 1
            if label != "none" and response.ready_to_resume("invalid observation" if step in faults else ""):
                response.resumed()
                label = "none"
                break
    assert response.retries == sum(e.startswith("return ") for e in response.events) <= max_retries
