"""A scripted expert for examples/mj_puck: absolute (x, y) position targets that bring the pusher behind the puck on
the goal→puck line and push through it toward the goal.

It reads true state through ``env.unwrapped.data`` (observation noise does not fool it) and is called by
``launch.collect expert=examples.mj_puck.expert:PuckExpert`` as ``PuckExpert(env)``. Travelling, it moves its target
at most ``speed`` per step, around the puck and the obstacle when the straight way passes them; pushing, it
commands a point ``lead`` ahead of the contact position, so the position servo presses into the puck. Per episode it
draws its speed and lead, so the demonstrations are not one trajectory per start.
"""

from __future__ import annotations

import numpy as np

from examples.mj_puck.envs import OBSTACLE_RADIUS, PUCK_RADIUS, PUSHER_RADIUS, WORKSPACE

CONTACT = PUSHER_RADIUS + PUCK_RADIUS          # m between the centres when the discs touch


def _detour(start: np.ndarray, goal: np.ndarray, centre: np.ndarray, clearance: float) -> np.ndarray | None:
    """A point beside ``centre`` on the start's side when the segment start→goal passes within ``clearance``."""
    seg = goal - start
    length2 = float(seg @ seg)
    t = 0.0 if length2 < 1e-12 else float(np.clip((centre - start) @ seg / length2, 0.0, 1.0))
    closest = start + t * seg
    if np.linalg.norm(closest - centre) >= clearance or t in (0.0, 1.0):
        return None
    side = closest - centre
    if np.linalg.norm(side) < 1e-6:
        side = np.array([-seg[1], seg[0]])
    return centre + side / np.linalg.norm(side) * (clearance + 0.02)


class PuckExpert:
    """reset(seed) / act(obs, info) -> the pusher's (x, y) target in metres."""

    def __init__(self, env, speed: float = 0.008, lead: float = 0.03):
        inner = env.unwrapped
        if not all(hasattr(inner, a) for a in ("data", "goal", "obstacle")):
            raise ValueError(f"PuckExpert drives examples.mj_puck's PuckPushEnv, not {type(inner).__name__}: build the env "
                             "with examples.mj_puck.envs:make_puck or a shift factory there")
        self.env, self.base_speed, self.base_lead = inner, float(speed), float(lead)
        self.speed, self.lead, self.pushing, self.target = self.base_speed, self.base_lead, False, None

    def reset(self, seed=None):
        rng = np.random.default_rng(seed)
        self.speed = self.base_speed * rng.uniform(0.8, 1.2)
        self.lead = self.base_lead * rng.uniform(0.8, 1.2)
        self.pushing, self.target = False, None

    def act(self, obs, info=None) -> np.ndarray:
        q = self.env.data.qpos
        pusher, puck, goal, obstacle = q[:2].copy(), q[2:4].copy(), self.env.goal, self.env.obstacle
        if self.target is None:
            self.target = pusher
        direction = (goal - puck) / max(np.linalg.norm(goal - puck), 1e-6)
        behind = puck - direction * CONTACT
        rel = pusher - behind
        lateral = abs(rel @ np.array([-direction[1], direction[0]]))
        along = rel @ direction
        if self.pushing and (lateral > 0.025 or along > 0.02):
            self.pushing = False
        if not self.pushing and lateral < 0.01 and -0.03 < along < 0.01:
            self.pushing = True
        if self.pushing:
            target = behind + direction * self.lead
        else:
            waypoint = puck - direction * (CONTACT + 0.025)
            for centre, clearance in ((puck, CONTACT + 0.015), (obstacle, OBSTACLE_RADIUS + PUSHER_RADIUS + 0.05)):
                waypoint = _detour(pusher, waypoint, centre, clearance) if _detour(pusher, waypoint, centre, clearance) is not None else waypoint
            step = waypoint - self.target
            target = self.target + step * min(1.0, self.speed / max(np.linalg.norm(step), 1e-9))
        self.target = np.clip(target, -WORKSPACE, WORKSPACE)
        return self.target.astype(np.float32)
