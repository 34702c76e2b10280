"""A scripted expert for gym-aloha's joint-space transfer-cube task: the right arm grasps the cube and lifts it to a
meeting point, the left arm comes from the other side and takes it.

gym-aloha's actions are absolute joint targets (6 per arm) and a normalised finger opening per arm (0 closed, 1 open).
The expert plans the grasp point of each gripper (``GRASP_DEPTH`` m out along the gripper's axis from its
``gripper_link``, between the finger pads) as straight segments between waypoints, and turns each step's pose into
joint targets by damped least-squares inverse kinematics on a scratch copy of the env's model, warm-started from the
last step's solution. It reads the cube's true pose at reset (privileged state, as fiper's own experts do), so
observation shifts do not fool it. Each episode draws its own meeting point and grasp pitch from its seed; the phases last the same every time.
"""

from __future__ import annotations

import mujoco
import numpy as np

GRASP_DEPTH = 0.125 # m from gripper_link to the point between the finger pads, along the gripper's axis
ARMS = ("left", "right")
BASE_X = {"left": -0.469, "right": 0.469}  # the arms' bases, at y = 0.5 (gym-aloha's vx300s_*.xml)
OPEN, CLOSED = 1.0, 0.0
# steps of each phase: above the cube, down, close, lift to the meeting point, the left arm's approach, its grip (the
# same every episode: a policy reads the phase from the state, and a pause with nothing changing would hide it)
PHASE_STEPS = (50, 30, 15, 50, 40, 15)
LEFT_REACH = 0.03  # m: the left grasp point stops this far short of the cube centre, its fingertips past the centre


def physics_of(env):
    """The dm_control Physics gym-aloha's AlohaEnv steps, or a ValueError naming what the expert drives."""
    inner = getattr(getattr(env, "unwrapped", env), "_env", None)
    physics = getattr(inner, "physics", None)
    if physics is None or "vx300s_right/gripper_link" not in [physics.model.id2name(i, "body") for i in range(physics.model.nbody)]:
        raise ValueError(f"TransferExpert drives gym-aloha's bimanual ViperX (gym_aloha/AlohaTransferCube-v0), not "
                         f"{type(getattr(env, 'unwrapped', env)).__name__}: use it with examples.gym_aloha.envs:make_aloha")
    return physics


def gripper_rotation(arm: str, target: np.ndarray, pitch: float, roll: float) -> np.ndarray:
    """World axes (columns) of a gripper pointing away from its arm's base towards ``target`` horizontally, tilted
    ``pitch`` rad down and rolled ``roll`` rad about its own axis; (0, 0) is the arm's start pose, fingers closing
    horizontally."""
    heading = np.array([target[0] - BASE_X[arm], target[1] - 0.5, 0.0])
    heading /= np.linalg.norm(heading)
    axis = np.cos(pitch) * heading - np.sin(pitch) * np.array([0.0, 0.0, 1.0])
    side = np.cross([0.0, 0.0, 1.0], heading)
    up = np.cross(axis, side)
    side = np.cos(roll) * side + np.sin(roll) * up
    return np.column_stack([axis, side, np.cross(axis, side)])


class ArmIK:
    """Joint targets of one arm's six joints that put its grasp point at a position with a rotation."""

    def __init__(self, model: mujoco.MjModel, arm: str):
        self.model, self.data = model, mujoco.MjData(model)
        self.joints = [model.joint(f"vx300s_{arm}/{j}").id for j in ("waist", "shoulder", "elbow", "forearm_roll",
                                                                       "wrist_angle", "wrist_rotate")]
        self.qpos = np.array([model.jnt_qposadr[j] for j in self.joints])
        self.dofs = np.array([model.jnt_dofadr[j] for j in self.joints])
        self.low, self.high = model.jnt_range[self.joints].T
        self.body = model.body(f"vx300s_{arm}/gripper_link").id

    def solve(self, q: np.ndarray, position: np.ndarray, rotation: np.ndarray, iterations: int = 8) -> np.ndarray:
        q = np.array(q, float)
        jacp, jacr = np.zeros((3, self.model.nv)), np.zeros((3, self.model.nv))
        for _ in range(iterations):
            self.data.qpos[self.qpos] = q
            mujoco.mj_kinematics(self.model, self.data)
            mujoco.mj_comPos(self.model, self.data)
            frame = self.data.xmat[self.body].reshape(3, 3)
            point = self.data.xpos[self.body] + GRASP_DEPTH * frame[:, 0]
            mujoco.mj_jac(self.model, self.data, jacp, jacr, point, self.body)
            turn = 0.5 * sum(np.cross(frame[:, i], rotation[:, i]) for i in range(3))
            error = np.concatenate([position - point, 0.3 * turn])
            jac = np.vstack([jacp[:, self.dofs], 0.3 * jacr[:, self.dofs]])
            step = jac.T @ np.linalg.solve(jac @ jac.T + 1e-4 * np.eye(6), error)
            q = np.clip(q + step, self.low, self.high)
        return q


class TransferExpert:
    """``TransferExpert(env)``: ``reset(seed)`` right after ``env.reset(seed=seed)``, then ``act(obs, info)`` each step."""

    def __init__(self, env):
        self.env = env
        self.physics = physics_of(env)
        model = self.physics.model.ptr
        self.ik = {arm: ArmIK(model, arm) for arm in ARMS}
        self.strategy = ""
        self.t = 0

    def reset(self, seed: int | None = None) -> None:
        rng = np.random.default_rng(None if seed is None else [int(seed), 7])
        data = self.physics.data.ptr
        self.q = {arm: data.qpos[self.ik[arm].qpos].copy() for arm in ARMS}
        cube = data.qpos[16:19].copy()
        cube[2] = 0.02  # resting on the table (it is dropped from 5 cm at reset)
        meet = np.array([rng.uniform(-0.02, 0.02), rng.uniform(0.48, 0.52), rng.uniform(0.23, 0.27)])
        pitch, lift_pitch = rng.uniform(0.95, 1.15), rng.uniform(0.4, 0.5)
        t = np.cumsum(PHASE_STEPS)
        home = {arm: self._grasp_point(arm) for arm in ARMS}
        wait = meet + [-0.16, 0.0, 0.0]
        self.strategy = f"meet at x {meet[0]:+.2f} m, grasp pitch {np.degrees(pitch):.0f} deg"
        # (step, position, pitch, roll, gripper) waypoints per arm, linearly interpolated in between
        self.plan = {
            "right": [(0, home["right"], 0.0, 0.0, OPEN), (t[0], cube + [0, 0, 0.10], pitch, 0.0, OPEN),
                      (t[1], cube + [0, 0, 0.003], pitch, 0.0, OPEN), (t[2], cube + [0, 0, 0.003], pitch, 0.0, CLOSED),
                      (t[3], meet, lift_pitch, 0.0, CLOSED), (t[3] + 400, meet, lift_pitch, 0.0, CLOSED)],
            "left": [(0, home["left"], 0.0, 0.0, OPEN), (t[3], wait, 0.0, np.pi / 2, OPEN)],
        }
        self.handover = t[3:]  # when the left arm leaves its waiting point, reaches the cube, has closed
        self.t = 0

    def _grasp_point(self, arm: str) -> np.ndarray:
        data, body = self.physics.data.ptr, self.ik[arm].body
        return data.xpos[body] + GRASP_DEPTH * data.xmat[body].reshape(3, 3)[:, 0]

    def _waypoint(self, arm: str):
        plan = self.plan[arm]
        for (t0, p0, pitch0, roll0, g0), (t1, p1, pitch1, roll1, g1) in zip(plan, plan[1:]):
            if self.t <= t1:
                s = (self.t - t0) / max(t1 - t0, 1)
                return (p0 + s * (p1 - p0), pitch0 + s * (pitch1 - pitch0), roll0 + s * (roll1 - roll0), g0 + s * (g1 - g0))
        _, p, pitch, roll, g = plan[-1]
        return p, pitch, roll, g

    def _plan_handover(self) -> None:
        """The left arm's approach, from the cube's position once the right arm has lifted it: fingers closing
        vertically on the cube's half nearer the left arm (the right arm's fingers hold its other sides)."""
        cube = self.physics.data.ptr.qpos[16:19].copy()
        start, approach, grip = (int(s) for s in self.handover)
        target = cube + [-LEFT_REACH, 0.0, 0.0]
        self.plan["left"] += [(approach, target, 0.0, np.pi / 2, OPEN), (grip, target, 0.0, np.pi / 2, CLOSED),
                              (grip + 400, target, 0.0, np.pi / 2, CLOSED)]

    def act(self, obs, info) -> np.ndarray:
        if self.t == self.handover[0]:
            self._plan_handover()
        action = []
        for arm in ARMS:
            position, pitch, roll, grip = self._waypoint(arm)
            self.q[arm] = self.ik[arm].solve(self.q[arm], position, gripper_rotation(arm, position, pitch, roll))
            action += [*self.q[arm], grip]
        self.t += 1
        return np.asarray(action, dtype=np.float32)
