"""A scripted Pusher-v5 expert: resolved-rate task-space control of the hand's cross bar, turned into torques.

It reads true state through ``env.unwrapped.data`` (so observation shifts do not fool it) and is called by
``launch.collect expert=examples.gym_pusher.expert:PushExpert`` as ``PushExpert(env)``. The hand (the body
``r_wrist_roll_link``, whose origin is the middle of the fork's cross bar and which the observation reports as the
fingertip) moves above the point behind the object on the goal→object line, comes down to the object's mid-height
and pushes the object toward the goal with the cross bar held horizontal and across the push. Pusher's object is
nearly massless against its slide-joint damping and its contact is soft, so the push is a penetration the object
yields to at about 4 cm/s; a faster hand passes through it. Per episode it draws how deep it presses and how high it
travels, so the demonstrations are not one trajectory per start. ``brake`` is the fallback an alarm hands the arm
to: joint damping on the observed velocities (a zero torque lets a moving arm coast on).
"""

from __future__ import annotations

from collections.abc import Mapping

import mujoco
import numpy as np

from examples.mass_matrix import full_mass_matrix

HAND, OBJECT, GOAL = "r_wrist_roll_link", "object", "goal"
OBJECT_RADIUS, BAR_RADIUS = 0.05, 0.02      # m: the cylinder and the cross bar's capsule
Z_PUSH = -0.275                              # m: the object's mid-height
STANDOFF = 0.03                              # m between the bar and the object before the push
POSTURE = np.array([0.0, 0.9, 0.0, -1.6, 0.0, -0.5, 0.0])  # the null-space rest posture (rad)


class PushExpert:
    """reset(seed) / act(obs, info) -> 7 joint torques in [-2, 2]; ``strategy`` names the episode's push depth."""

    def __init__(self, env, stiffness: float = 30.0, travel_speed: float = 0.2):
        self.env = env.unwrapped
        model = getattr(self.env, "model", None)
        names = {model.body(i).name for i in range(model.nbody)} if model is not None else set()
        if not {HAND, OBJECT, GOAL} <= names:
            raise ValueError(f"PushExpert drives gymnasium's Pusher-v5, and this env ({type(self.env).__name__}) has no MuJoCo bodies "
                             f"{HAND!r}, {OBJECT!r} and {GOAL!r}: build it with examples.gym_pusher.envs:make_pusher or a shift factory there")
        self.model, self.data = model, self.env.data
        self.hand = model.body(HAND).id
        self.jacp, self.jacr = np.zeros((3, model.nv)), np.zeros((3, model.nv))
        self.mass = np.zeros((model.nv, model.nv))
        self.low, self.high = model.jnt_range[:7, 0], model.jnt_range[:7, 1]
        self.tau_low, self.tau_high = model.actuator_ctrlrange[:, 0], model.actuator_ctrlrange[:, 1]
        self.stiffness = float(stiffness)      # 1/s²: the joints' tracking gain (critically damped); low gains keep the torques smooth
        self.travel_speed = float(travel_speed)  # m/s of the hand outside the push
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        rng = np.random.default_rng(seed)
        self.depth = float(rng.uniform(0.045, 0.055))   # m the bar presses into the object while pushing
        self.z_travel = float(rng.uniform(-0.16, -0.12))  # m: the height it moves at above the object
        self.strategy = "deep" if self.depth > 0.05 else "shallow"
        self.phase = "above"

    def act(self, obs, info) -> np.ndarray:
        model, data = self.model, self.data
        obj, goal = data.body(OBJECT).xpos[:2], data.body(GOAL).xpos[:2]
        hand, rot = data.xpos[self.hand].copy(), data.xmat[self.hand].reshape(3, 3)
        to_goal = goal - obj
        u = to_goal / max(float(np.linalg.norm(to_goal)), 1e-6)            # push direction
        side = np.array([-u[1], u[0]])
        contact = obj - u * (OBJECT_RADIUS + BAR_RADIUS)
        pre = contact - u * STANDOFF
        rel = hand[:2] - obj
        if self.phase == "above":
            target = np.r_[pre, self.z_travel]
            if np.linalg.norm(hand[:2] - pre) < 0.03:
                self.phase = "down"
        elif self.phase == "down":
            target = np.r_[pre, Z_PUSH]
            if np.linalg.norm(hand[:2] - pre) > 0.06:
                self.phase = "above"
            elif abs(hand[2] - Z_PUSH) < 0.02 and np.linalg.norm(hand[:2] - pre) < 0.03:
                self.phase = "push"
        else:
            target = np.r_[contact + u * self.depth, Z_PUSH]
            if abs(rel @ side) > 0.04 or rel @ u > -0.005:                  # slipped off the bar: go round again
                self.phase = "above"
        velocity = 5.0 * (target - hand)
        limit = self.travel_speed if self.phase != "push" else 0.06
        speed = float(np.linalg.norm(velocity))
        if speed > limit:
            velocity *= limit / speed
        bar = np.r_[side, 0.0] if side @ rot[:2, 1] >= 0 else -np.r_[side, 0.0]   # the bar horizontal, across the push
        spin = 4.0 * np.cross(rot[:, 1], bar)
        mujoco.mj_jacBody(model, data, self.jacp, self.jacr, self.hand)
        jac = np.r_[self.jacp[:, :7], 0.3 * self.jacr[:, :7]]
        pinv = jac.T @ np.linalg.inv(jac @ jac.T + 1e-3 * np.eye(6))
        q, qd = data.qpos[:7], data.qvel[:7]
        qdot = pinv @ np.r_[velocity, 0.3 * spin] + (np.eye(7) - pinv @ jac) @ (POSTURE - q)
        q_target = np.clip(q + 0.05 * qdot, self.low, self.high)
        full_mass_matrix(model, data, self.mass)
        torque = self.mass[:7, :7] @ (self.stiffness * (q_target - q) + 2.0 * np.sqrt(self.stiffness) * (qdot - qd)) + data.qfrc_bias[:7] + model.dof_damping[:7] * qd
        return np.clip(torque, self.tau_low, self.tau_high).astype(np.float32)


class Brake:
    """The safe controller for an alarm: torque −gain·(joint velocity) on the observed velocities (obs[7:14]), which
    brings the arm to rest where it is (Pusher has no gravity, so a resting arm stays put)."""

    def __init__(self, gain: float = 2.0, limit: float = 2.0):
        self.gain, self.limit = float(gain), float(limit)

    def __call__(self, obs) -> np.ndarray:
        velocity = np.atleast_2d(np.asarray(obs["obs"] if isinstance(obs, Mapping) else obs, dtype=np.float64))[-1, 7:14]
        return np.clip(-self.gain * velocity, -self.limit, self.limit).astype(np.float32)


brake = Brake()
