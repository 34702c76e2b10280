"""Success and failure-onset labels: constructed events must be labelled at the right step."""

from __future__ import annotations

import numpy as np
import pytest
from env_helpers import wiggle

import envs
from envs.geometry import yaw_quat
from envs.tasks.pick_place import BIN_CENTER
from envs.tasks.push_t import TARGET


def hold_until(env, k: int):
    """Run k steps holding still; returns the info after them."""
    info = {}
    for _ in range(k):
        _, _, terminated, truncated, info = env.step(env.hold_action())
        assert not (terminated or truncated)
    return info


def set_free_body(env, body: str, pos, quat=(1.0, 0.0, 0.0, 0.0)):
    a = env.free_qpos(body)
    env.data.qpos[a : a + 7] = [*pos, *quat]
    env.data.qvel[env.free_dof(body) : env.free_dof(body) + 6] = 0.0


@pytest.mark.parametrize("k", [0, 7])
def test_block_off_the_table_at_step_k(k):
    env = envs.make_env("push_t")
    env.reset(seed=2)
    info = hold_until(env, k)
    assert info.get("failure_step", -1) == -1
    set_free_body(env, "block", [0.36, 0.0, 0.015])
    _, reward, terminated, truncated, info = env.step(env.hold_action())
    assert (info["failure_step"], info["failure_reason"], info["failure"]) == (k, "off_table", True)
    assert terminated and not truncated and not info["success"] and reward == 0.0


def test_tipped_block_is_a_failure():
    env = envs.make_env("push_t")
    env.reset(seed=1)
    hold_until(env, 4)
    tilt = np.array([np.cos(np.pi / 4), np.sin(np.pi / 4), 0.0, 0.0])  # 90 degrees about x: on its side
    set_free_body(env, "block", [0.0, -0.15, 0.06], tilt)
    _, _, terminated, _, info = env.step(env.hold_action())
    assert (info["failure_step"], info["failure_reason"]) == (4, "tipped_over") and terminated


def test_sort_cube_off_the_table_names_the_cube():
    env = envs.make_env("sort")
    env.reset(seed=0)
    hold_until(env, 3)
    set_free_body(env, "blue", [0.1, -0.4, 0.02])
    *_, info = env.step(env.hold_action())
    assert (info["failure_step"], info["failure_reason"]) == (3, "off_table:blue")


@pytest.mark.parametrize("task", ["push_t", "pick_place"])
def test_touching_the_obstacle_is_a_failure_at_that_step(task):
    env = envs.make_env(task, shifts=[("obstacle", 1.0)])
    env.reset(seed=0)
    hold_until(env, 5)
    g = env.obstacle_geom
    target = env.model.geom_pos[g].copy()
    if task == "push_t":  # put the pusher right against the obstacle
        q = [env.model.joint(j).qposadr[0] for j in ("pusher_x", "pusher_y")]
        env.data.qpos[q] = target[:2] + [env.model.geom_size[g, 0] + 0.015, 0.0]
    else:  # drop the cube onto the obstacle's top
        set_free_body(env, "cube", [target[0], target[1], 2 * target[2] + 0.02])
    *_, info = env.step(env.hold_action())
    assert (info["failure_step"], info["failure_reason"]) == (5, "obstacle_collision")


def test_drop_outside_the_bin_is_labelled_when_the_cube_lands():
    env = envs.make_env("pick_place")
    obs, info = env.reset(seed=3)
    expert = envs.make_expert(env)
    expert.reset(3)
    t = 0
    while env.cube_pos()[2] < 0.07:  # until carried well above the table
        obs, _, terminated, truncated, info = env.step(expert.act(obs, info))
        t += 1
        assert not (terminated or truncated) and t < 80
    heights = []
    release = env.hold_action()
    release[3] = 0.0  # open the gripper mid-air, far from the bin
    assert np.linalg.norm(env.cube_pos()[:2] - BIN_CENTER) > 0.08
    while True:
        *_, terminated, truncated, info = env.step(release)
        heights.append(env.cube_pos()[2])
        if terminated or truncated:
            break
    rest = env.cube_half()[2]
    landed = t + int(np.argmax(np.array(heights) < rest + 0.005))
    assert info["failure_reason"] == "dropped" and info["failure_step"] == landed


def test_timeout_is_a_failure_only_at_the_end():
    env = envs.make_env("sort", max_episode_steps=6)
    env.reset(seed=0)
    for t in range(6):
        _, _, terminated, truncated, info = env.step(env.hold_action())
        assert info["failure_step"] == (-1 if t < 5 else 5)
    assert truncated and not terminated and info["failure_reason"] == "timeout" and not info["success"]


def test_success_ends_the_episode_without_failure():
    env = envs.make_env("push_t")
    env.reset(seed=4)
    hold_until(env, 2)
    set_free_body(env, "block", [TARGET[0], TARGET[1], 0.015], yaw_quat(TARGET[2]))
    _, reward, terminated, truncated, info = env.step(env.hold_action())
    assert info["success"] and terminated and not truncated and reward == 1.0
    assert (info["failure"], info["failure_step"], info["failure_reason"]) == (False, -1, "")


def test_cube_released_in_the_bin_is_a_success():
    env = envs.make_env("pick_place")
    env.reset(seed=4)
    set_free_body(env, "cube", [BIN_CENTER[0], BIN_CENTER[1], 0.02])
    *_, terminated, _, info = env.step(env.hold_action())
    assert info["success"] and terminated


def test_outcome_is_decided_by_the_first_event():
    env = envs.make_env("push_t", terminate_on_success=False, terminate_on_failure=False)
    env.reset(seed=4)
    set_free_body(env, "block", [TARGET[0], TARGET[1], 0.015], yaw_quat(TARGET[2]))
    *_, info = env.step(env.hold_action())
    assert info["success"]
    set_free_body(env, "block", [0.4, 0.0, 0.015])  # later mishaps do not undo a success
    *_, terminated, _, info = env.step(env.hold_action())
    assert info["success"] and info["failure_step"] == -1 and not terminated

    env.reset(seed=4)
    hold_until(env, 1)
    set_free_body(env, "block", [0.4, 0.0, 0.015])
    for a in wiggle(env, 4):
        *_, terminated, _, info = env.step(a)
    assert not terminated and info["failure_step"] == 1 and info["failure_reason"] == "off_table"


def test_episode_ends_at_the_step_limit_after_an_outcome_it_does_not_terminate_on():
    for kind in ("success", "failure"):
        env = envs.make_env("push_t", max_episode_steps=6, terminate_on_success=False, terminate_on_failure=False)
        env.reset(seed=4)
        pose = ([TARGET[0], TARGET[1], 0.015], yaw_quat(TARGET[2])) if kind == "success" else ([0.4, 0.0, 0.015],)
        set_free_body(env, "block", *pose)
        ends = []
        for _ in range(6):
            *_, terminated, truncated, info = env.step(env.hold_action())
            ends.append((terminated, truncated))
        assert info[kind] and info["failure_reason"] != "timeout"
        assert ends == [(False, False)] * 5 + [(False, True)], kind  # truncated at the limit, labels kept
        with pytest.raises(RuntimeError, match="reset"):
            env.step(env.hold_action())


def test_setting_the_cube_down_is_not_a_drop():
    env = envs.make_env("pick_place")
    obs, info = env.reset(seed=3)
    expert = envs.make_expert(env)
    expert.reset(3)
    while env.cube_pos()[2] < 0.07:
        obs, _, _, _, info = env.step(expert.act(obs, info))
    hand = env.agent_position()
    for z in np.linspace(hand[2], 0.076, 4):  # lower it back onto the table, still closed
        *_, info = env.step(np.array([hand[0], hand[1], z, 1.0]))
    for _ in range(4):  # open and back off
        *_, info = env.step(np.array([hand[0], hand[1], 0.12, 0.0]))
    assert not env.cube_held() and env.cube_pos()[2] < env.cube_half()[2] + 0.005
    assert not info["failure"] and info["failure_step"] == -1
