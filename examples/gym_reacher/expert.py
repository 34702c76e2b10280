"""A scripted Reacher-v5 expert: operational-space PD on the fingertip (Jacobian transpose, task-space inertia).

It reads true state through ``env.unwrapped.data`` (so observation shifts do not fool it) and is
called by ``launch.collect expert=examples.gym_reacher.expert:ReachExpert`` as ``ReachExpert(env)``.
Per episode it draws its gains (a quicker or a gentler reach), so the demonstrations are not one
trajectory per start.
"""

from __future__ import annotations

import mujoco
import numpy as np

from examples.mass_matrix import full_mass_matrix

TIP, TARGET = "fingertip", "target"


class ReachExpert:
    """reset(seed) / act(obs, info) -> 2 actuator commands in [-1, 1]; ``strategy`` names the episode's gains."""

    def __init__(self, env):
        self.env = env.unwrapped
        model = getattr(self.env, "model", None)
        names = {model.body(i).name for i in range(model.nbody)} if model is not None else set()
        if not {TIP, TARGET} <= names:
            raise ValueError(f"ReachExpert drives gymnasium's Reacher-v5, and this env ({type(self.env).__name__}) has no MuJoCo "
                             f"bodies {TIP!r} and {TARGET!r}: build it with examples.gym_reacher.envs:make_reacher or a shift factory there")
        self.model, self.data = model, self.env.data
        self.tip = model.body(TIP).id
        self.jacp = np.zeros((3, model.nv))
        self.mass = np.zeros((model.nv, model.nv))
        self.gear = model.actuator_gear[:, 0].copy()
        self.low, self.high = model.actuator_ctrlrange[:, 0], model.actuator_ctrlrange[:, 1]
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        rng = np.random.default_rng(seed)
        omega = float(rng.uniform(8.0, 14.0))          # rad/s: the reach's bandwidth
        self.kp, self.kd = omega**2, 2.0 * float(rng.uniform(0.8, 1.1)) * omega  # critically damped, give or take
        self.strategy = "quick" if omega > 11.0 else "gentle"

    def act(self, obs, info) -> np.ndarray:
        data = self.data
        mujoco.mj_jacBody(self.model, data, self.jacp, None, self.tip)
        jac = self.jacp[:2, :2]
        full_mass_matrix(self.model, data, self.mass)
        inertia = np.linalg.inv(jac @ np.linalg.solve(self.mass[:2, :2], jac.T) + 1e-6 * np.eye(2))  # task-space inertia
        error = data.body(TARGET).xpos[:2] - data.xpos[self.tip][:2]
        force = inertia @ (self.kp * error - self.kd * (jac @ data.qvel[:2]))
        torque = jac.T @ force + data.qfrc_bias[:2] + self.model.dof_damping[:2] * data.qvel[:2]  # cancel Coriolis and joint damping
        return np.clip(torque / self.gear, self.low, self.high).astype(np.float32)
