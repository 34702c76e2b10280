"""Fallbacks on hand-built contexts with a simulated first-order robot (position-target actions)."""

import numpy as np
import pytest

from fiper.interventions import (
    FallbackContext,
    HandOver,
    HoldPosition,
    Retreat,
    SafeController,
    Stop,
    make_fallback,
    register_fallback,
)
from fiper.interventions.fallbacks import FALLBACKS

# Action layout: x, y, z position targets, then a gripper command.
POS, GRIP = (0, 1, 2), (3,)


class Robot:
    """Tracks position targets with a lag and a small random disturbance each step."""

    def __init__(self, pos, seed=0, gain=0.5, noise=0.002):
        self.pos = np.asarray(pos, dtype=float)
        self.rng = np.random.default_rng(seed)
        self.gain, self.noise = gain, noise

    def obs(self):
        return {"agent_pos": np.concatenate([self.pos, [0.0]])}  # position + a gripper reading

    def step(self, action):
        self.pos = self.pos + self.gain * (action[:3] - self.pos) + self.rng.normal(0, self.noise, 3)


def driven_context(n_steps=30, seed=0):
    """A context after the robot followed a curved path for ``n_steps`` steps; returns (ctx, robot, targets)."""
    ctx = FallbackContext(action_dim=4, position_dims=POS, gripper_dims=GRIP, agent_pos_dims=(0, 1, 2))
    robot = Robot([0.0, 0.0, 0.1], seed=seed)
    s = np.linspace(0, 1, n_steps)
    targets = np.stack([s * 0.4, 0.2 * np.sin(3 * s), 0.1 + 0.05 * s, np.full_like(s, 0.7)], axis=1)
    for a in targets:
        robot.step(a)
        ctx.record(a, robot.obs())
    return ctx, robot, targets


def run(fallback, ctx, robot, steps):
    fallback.start(ctx)
    actions, positions = [], []
    for _ in range(steps):
        a = fallback.act(robot.obs(), ctx)
        robot.step(a)
        actions.append(a)
        positions.append(robot.pos.copy())
    return np.array(actions), np.array(positions)


def test_hold_keeps_position_within_tolerance_over_many_steps():
    ctx, robot, targets = driven_context()
    start = robot.pos.copy()
    actions, positions = run(HoldPosition(), ctx, robot, 300)
    drift = np.linalg.norm(positions - start, axis=1)
    assert drift.max() < 0.015  # disturbances do not accumulate: the latched target pulls back
    assert np.allclose(actions[:, :3], start)  # the measured position at take-over
    assert np.all(actions[:, 3] == 0.7)  # gripper unchanged


def test_stop_holds_the_last_commanded_target():
    ctx, robot, targets = driven_context()
    actions, positions = run(Stop(), ctx, robot, 100)
    assert np.all(actions == targets[-1])
    assert np.linalg.norm(positions[-20:] - targets[-1, :3], axis=1).max() < 0.015


def test_retreat_retraces_the_recorded_path_in_reverse_then_holds():
    ctx, robot, targets = driven_context(n_steps=30)
    steps = 20
    start = robot.pos.copy()
    actions, positions = run(Retreat(steps=steps), ctx, robot, 40)
    # First the measured position, then recorded targets newest -> oldest from the one nearest the
    # robot (the lagging robot has not reached the newest target), then hold the oldest.
    assert np.allclose(actions[0, :3], start)
    back = targets[-steps:, :3][::-1]
    first = int(np.argmin(np.linalg.norm(back - start, axis=1)))
    assert first <= 2
    k = steps - first
    assert np.allclose(actions[1 : k + 1, :3], back[first:])
    assert np.allclose(actions[k + 1 :, :3], targets[-steps, :3])
    assert np.all(actions[:, 3] == 0.7)
    # The robot gets closer to where the retraced stretch began, step by step (lag + noise allowed).
    goal = targets[-steps, :3]
    dist = np.linalg.norm(positions - goal, axis=1)
    assert dist[0] > 0.2 and dist[-1] < 0.015
    assert np.all(np.diff(dist[: k + 1]) < 0.005)


def test_retreat_with_speed_moves_at_bounded_speed_along_the_path():
    ctx, robot, targets = driven_context(n_steps=30)
    speed = 0.005
    actions, _ = run(Retreat(steps=30, speed=speed), ctx, robot, 200)
    pos = actions[:, :3]
    step_len = np.linalg.norm(np.diff(pos, axis=0), axis=1)
    assert step_len.max() <= speed + 1e-9
    # Every commanded point lies on the recorded polyline (within interpolation round-off).
    fine = np.concatenate([np.linspace(targets[i, :3], targets[i + 1, :3], 50) for i in range(29)])
    nearest = np.linalg.norm(pos[:, None] - fine[None], axis=-1).min(1)
    assert nearest[1:].max() < 2e-3
    assert np.linalg.norm(pos[-1] - targets[0, :3]) < 1e-9  # walked all the way back, then holds


def test_retreat_with_velocity_actions_replays_negated_velocities():
    ctx = FallbackContext(action_dim=2, position_dims=(0, 1), action_mode="velocity")
    vel = np.array([[0.1, 0.0], [0.1, 0.05], [0.0, 0.2]])
    for v in vel:
        ctx.record(v)
    fb = Retreat(steps=3)
    fb.start(ctx)
    out = np.array([fb.act({}, ctx) for _ in range(5)])
    assert np.allclose(out[:3], -vel[::-1])
    assert np.allclose(out[3:], 0.0)
    assert np.allclose(out.sum(0), -vel.sum(0))  # back where the history started


def test_hand_over_calls_the_callback_and_holds_until_it_answers():
    ctx, robot, targets = driven_context()
    calls, started = [], []

    def callback(obs, context):
        calls.append(obs["agent_pos"].copy())
        return None if len(calls) <= 3 else np.array([0.0, 0.0, 0.3, 0.0])

    fb = HandOver(callback, on_start=lambda context: started.append(context))
    hold_at = robot.pos.copy()
    actions, _ = run(fb, ctx, robot, 6)
    assert len(calls) == 6 and started == [ctx]
    assert np.allclose(actions[:3, :3], hold_at) and np.all(actions[:3, 3] == 0.7)
    assert np.allclose(actions[3:], [0.0, 0.0, 0.3, 0.0])


def test_user_controller_is_used_and_checked():
    ctx, robot, _ = driven_context()
    home = np.array([0.0, 0.0, 0.2, 0.0])
    actions, positions = run(SafeController(lambda obs: home), ctx, robot, 60)
    assert np.all(actions == home)
    assert np.linalg.norm(positions[-1] - home[:3]) < 0.015
    bad = SafeController(lambda obs: np.zeros(3))
    with pytest.raises(ValueError, match=r"safe controller returned an action of shape \(3,\); expected \(4,\)"):
        bad.act(robot.obs(), ctx)
    nan = SafeController(lambda obs: np.full(4, np.nan))
    with pytest.raises(ValueError, match="non-finite"):
        nan.act(robot.obs(), ctx)


def test_controller_loads_from_a_module_path():
    ctx = FallbackContext(action_dim=2, position_dims=(0, 1), agent_pos_key=None)
    fb = SafeController("numpy:zeros_like")
    assert np.all(fb.act(np.ones(2), ctx) == 0)


def test_hold_without_history_uses_the_measured_position_and_fails_clearly_without_one():
    ctx = FallbackContext(action_dim=3, position_dims=(0, 1), gripper_dims=(2,))
    out = make_fallback("hold").act({"agent_pos": np.array([[0.0, 0.0], [0.3, -0.2]])}, ctx)
    assert np.allclose(out, [0.3, -0.2, 0.0])  # the most recent row of the history
    with pytest.raises(ValueError, match="no executed action and no measured position"):
        make_fallback("stop").act({}, ctx)


def test_registry_builds_by_name_and_names_the_known_ones():
    assert isinstance(make_fallback("retreat", steps=5, speed=0.01), Retreat)
    with pytest.raises(KeyError, match=r"unknown fallback 'teleport'.*'hand_over', 'hold', 'retreat', 'stop'"):
        make_fallback("teleport")
    register_fallback("freeze", Stop)
    try:
        assert isinstance(make_fallback("freeze"), Stop)
        with pytest.raises(ValueError, match="already registered"):
            register_fallback("freeze", HoldPosition)
    finally:
        FALLBACKS.pop("freeze")


def test_context_validates_its_layout():
    with pytest.raises(ValueError, match="position_dims"):
        FallbackContext(action_dim=2, position_dims=(0, 2))
    with pytest.raises(ValueError, match="overlap"):
        FallbackContext(action_dim=3, position_dims=(0, 1), gripper_dims=(1,))
    with pytest.raises(ValueError, match="action_mode"):
        FallbackContext(action_dim=2, position_dims=(0, 1), action_mode="torque")
    ctx = FallbackContext(action_dim=2, position_dims=(0, 1))
    with pytest.raises(ValueError, match="executed action has shape"):
        ctx.record(np.zeros(3))
