"""A scripted expert for dm_control's reacher: operational-space PD on the fingertip (Jacobian transpose, task-space
inertia), reading the true state from dm_control's physics, so observation shifts do not fool it.

``launch.collect expert=examples.dmc_reacher.expert:ReachExpert`` calls it as ``ReachExpert(env)``. Per episode it
draws its gains (a quicker or a gentler reach), so the demonstrations are not one trajectory per start.
``brake_controller`` is the act stage's fallback: it damps the joints' velocities from the observation.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from examples.dmc_reacher.envs import physics
from examples.mass_matrix import full_mass_matrix


class ReachExpert:
    """reset(seed) / act(obs, info) -> 2 motor commands in [-1, 1]; ``strategy`` names the episode's gains.

    It solves the arm's inverse kinematics for the target (of the two elbow poses, the one nearer the wrist's angle
    now) and drives the joints there with a PD through the mass matrix: a Jacobian-transpose law on the fingertip stalls
    with the arm stretched out (a singular Jacobian) when the target is near the base (6 of 20 seeds)."""

    def __init__(self, env):
        try:
            self.physics = physics(env)
            self.model, self.data = self.physics.model.ptr, self.physics.data.ptr
            self.target = self.model.geom("target").id
            hand, finger = self.model.body("hand").id, self.model.body("finger").id
        except (AttributeError, KeyError) as err:
            raise ValueError(f"ReachExpert drives dm_control's reacher through shimmy, and this env ({type(env.unwrapped).__name__}) "
                             "is not one: build it with examples.dmc_reacher.envs:make_reacher or a shift factory there") from err
        self.upper, self.lower = float(self.model.body_pos[hand][0]), float(self.model.body_pos[finger][0])  # link lengths
        self.mass = np.zeros((self.model.nv, self.model.nv))
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        rng = np.random.default_rng(seed)
        omega = float(rng.uniform(5.0, 9.0))            # rad/s: the reach's bandwidth (the physics steps at 0.02 s)
        self.kp, self.kd = omega**2, 2.0 * float(rng.uniform(0.8, 1.1)) * omega
        self.strategy = "quick" if omega > 7.0 else "gentle"

    def goal(self) -> np.ndarray:
        """Joint angles putting the fingertip on the target."""
        x, y = self.data.geom_xpos[self.target][:2]
        l1, l2 = self.upper, self.lower
        cos_elbow = np.clip((x * x + y * y - l1 * l1 - l2 * l2) / (2 * l1 * l2), -1.0, 1.0)
        elbow = np.arccos(cos_elbow) * (1.0 if self.data.qpos[1] >= 0 else -1.0)
        shoulder = np.arctan2(y, x) - np.arctan2(l2 * np.sin(elbow), l1 + l2 * np.cos(elbow))
        return np.array([shoulder, elbow])

    def act(self, obs, info) -> np.ndarray:
        model, data = self.model, self.data
        error = self.goal() - data.qpos[:2]
        error[0] = (error[0] + np.pi) % (2 * np.pi) - np.pi   # the shoulder turns freely
        full_mass_matrix(model, data, self.mass)
        torque = self.mass[:2, :2] @ (self.kp * error - self.kd * data.qvel[:2]) + data.qfrc_bias[:2] \
            + model.dof_damping[:2] * data.qvel[:2]
        low, high = model.actuator_ctrlrange[:, 0], model.actuator_ctrlrange[:, 1]
        return np.clip(torque / model.actuator_gear[:, 0], low, high)


class BrakeController:
    """The act stage's fallback on an alarm: a command against each joint's velocity, read from the observation (a
    deployed robot has no privileged state), so the arm stops where it is instead of carrying on."""

    def __init__(self, gain: float = 2.0):
        self.gain = float(gain)

    def __call__(self, obs) -> np.ndarray:
        velocity = np.asarray(obs["velocity"] if isinstance(obs, Mapping) else obs, dtype=np.float64).reshape(-1)[:2]
        return np.clip(-self.gain * velocity, -1.0, 1.0)


brake_controller = BrakeController()
