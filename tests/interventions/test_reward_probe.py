"""A reward program of one's own is called once when the steering is first bound to an env, on chunks of actions drawn
in the env's action space: one that raises, returns a wrong shape, NaN or a value without a gradient is refused there,
naming it and the fix, instead of turning every alarm of a sweep into a fail-safe fallback that the table reports as
steering."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from fiper.interventions import KeepOut, SceneKeepOut, Steering, load_reward
from launch import act
from user_parts import PARTS

BAD = PARTS + '''

def per_step(traj):
    return -traj.sum(-1)


def not_a_number(traj):
    return traj[:, 0, 0] * float("nan")


def broken(traj):
    raise RuntimeError("my bug")


def detached(traj):
    return torch.tensor((-traj.sum((1, 2))).tolist())


def inside_count(traj):
    return -((traj[..., 0] > 0.0) & (traj[..., 1] > 0.0)).float().sum(-1)
'''


class Arm(gym.Env):
    """A 3-d position target and a gripper, in metres, with the obstacle list SceneKeepOut reads."""

    observation_space = gym.spaces.Dict({"agent_pos": gym.spaces.Box(-1, 1, (4,), np.float32)})
    action_space = gym.spaces.Box(np.array([-0.3, -0.3, 0.0, 0.0], np.float32), np.array([0.3, 0.3, 0.3, 1.0], np.float32))

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return {"agent_pos": np.zeros(4, np.float32)}, {}

    def scene_obstacles(self):
        return []


@pytest.fixture()
def parts(tmp_path):
    path = tmp_path / "my_rewards.py"
    path.write_text(BAD)
    return str(path)


@pytest.mark.parametrize("name, words", [
    ("per_step", r"returned shape \(4, 8\) for a trajectory batch of shape \(4, 8, 3\); it must return one reward per "
                 r"trajectory, shape \(4,\)"),
    ("not_a_number", r"returned 4 non-finite values"),
    ("broken", r"called once on 4 trajectories .* before anything runs raised RuntimeError: my bug"),
    ("detached", r"before anything runs: its output does not depend on the trajectory through torch operations"),
    ("inside_count", r"a yes/no test such as `inside.float\(\)` has no gradient either"),
])
def test_a_wrong_reward_is_refused_when_the_steering_is_first_bound(parts, name, words):
    steering = Steering(load_reward(f"{parts}:{name}"), position_dims=[0, 1, 2], num_particles=4)
    with pytest.raises(ValueError, match=f"reward '.*my_rewards.py:{name}'.*{words}"):
        steering.bind(Arm())


def test_a_good_reward_is_probed_once_in_env_units_and_scene_rewards_pass(parts):
    seen = []

    def above(traj):
        seen.append(traj.detach().clone())
        return -torch.relu(0.1 - traj[..., 2]).sum(-1)

    steering = Steering([load_reward(above), KeepOut(center=[0, 0, 0], radius=0.05), SceneKeepOut()],
                        position_dims=[0, 1, 2], num_particles=4)
    env = Arm()
    steering.bind(env)
    steering.bind(env)
    assert len(seen) == 1 and seen[0].shape == (4, 8, 3)  # once, on the first bind
    low, high = env.action_space.low[:3], env.action_space.high[:3]
    assert (seen[0] >= torch.as_tensor(low)).all() and (seen[0] <= torch.as_tensor(high)).all()  # z is the action's z
    Steering(load_reward(above), num_particles=4).bind(object())  # no action space to draw from: nothing to probe


def test_a_reward_without_gradient_is_named_at_run_time_too(parts):
    steering = Steering(load_reward(f"{parts}:detached"), position_dims=[0, 1], num_particles=4)
    with pytest.raises(ValueError, match="reward '.*detached'.*does not depend on the trajectory through torch operations"):
        steering._reward_and_grad(torch.zeros(1, 4, 8, 2))


def test_launch_act_refuses_a_wrong_reward_before_the_sweep(parts):
    configs = {"mine": act.response_config("mine", {"mine": {"preset": "steer_user_reward",
                                                             "steering": {"reward": {"spec": f"{parts}:per_step"},
                                                                          "position_dims": [0, 1, 2]}}})}
    with pytest.raises(ValueError, match=r"nothing has run yet\): response 'mine' cannot act on this env: reward .*per_step"
                                         r"' returned shape \(4, 8\)"):
        act.check_responses(configs, Arm(), "launch.act (nothing has run yet)")
