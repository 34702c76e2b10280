"""A scripted gym-pusht expert: greedy pushes chosen by simulating each candidate on a scratch pymunk space.

It reads true state through ``env.unwrapped`` (so observation shifts do not fool it) and is called by ``launch.collect
expert=examples.gym_pusht.expert:PushTExpert`` as ``PushTExpert(env)``. Each cycle lists contact points along the T's
outline and push lengths, simulates each straight stroke on a copy of the block and agent (same mass, centre of
gravity, friction, damping and PD gains as the env's), scores the block's pose error as the mean distance of its 8
keypoints to the goal's, and picks at random among the strokes within 30 % of the best improvement. The agent then
goes round the T to the stroke's start, pushes, and plans again. Targets move at most ``speed`` px per step.
"""

from __future__ import annotations

import numpy as np
import pymunk
import shapely.geometry as sg

AGENT_RADIUS = 15.0
CLEARANCE = AGENT_RADIUS + 4.0   # px between the agent's centre and the T while travelling
STANDOFF = AGENT_RADIUS + 6.0    # px from the contact point to the agent's centre at a stroke's start
APPROACH = 25.0                  # px further out along the push line, where the agent lines up for it
PATIENCE = 40                    # steps to reach a stroke's start before planning again
LENGTHS = (6.0, 20.0, 50.0, 90.0)    # px the agent's centre travels past touching the T
WALL_LOW, WALL_HIGH = 25.0, 487.0


def keypoints(position, angle: float, vertices: np.ndarray) -> np.ndarray:
    """(8, 2) world keypoints of a T at ``position``/``angle`` from its local vertices, as gym-pusht's get_keypoints."""
    c, s = np.cos(angle), np.sin(angle)
    return vertices @ np.array([[c, s], [-s, c]]) + np.asarray(position, dtype=float)


class PushTExpert:
    """reset(seed) / act(obs, info) -> the agent's target (x, y) in px; ``strategy`` names the episode's first push."""

    def __init__(self, env, speed: float = 40.0, tolerance: float = 0.3):
        self.env = env.unwrapped
        if not all(hasattr(self.env, name) for name in ("k_p", "k_v", "control_hz", "get_goal_pose_body")):
            raise ValueError(f"PushTExpert drives gym-pusht's PushT-v0, and this env ({type(self.env).__name__}) has no "
                             "PD gains (k_p, k_v), control_hz or get_goal_pose_body: build it with examples.gym_pusht.envs:make_pusht or a shift factory there")
        self.speed, self.tolerance = float(speed), float(tolerance)
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)
        self.plan: list[np.ndarray] = []   # the committed stroke's remaining targets
        self.stroke: tuple[np.ndarray, np.ndarray] | None = None  # (start, targets) chosen, not yet reached
        self.strategy = ""

    # -- geometry of the env's block --------------------------------------------------------------------------
    def _shapes(self) -> list:
        """The T's two boxes in an order of their own: pymunk's Body.shapes is a set ordered by memory address, so its
        order (and with it the outline's starting point and the scratch space's contact handling) would change from one
        process to the next, and the same seed would give other demonstrations."""
        return sorted(self.env.block.shapes, key=lambda s: tuple(c for v in s.get_vertices() for c in (round(v.x, 6), round(v.y, 6))))

    def _vertices(self) -> np.ndarray:
        return np.array([list(v) for shape in self._shapes() for v in shape.get_vertices()], dtype=float)

    def _goal_keypoints(self) -> np.ndarray:
        goal = np.asarray(self.env.goal_pose, dtype=float)
        return keypoints(goal[:2], goal[2], self._vertices())

    def _outline(self, position, angle: float) -> sg.Polygon:
        points = keypoints(position, angle, self._vertices())
        return sg.Polygon(points[:4]).buffer(0.1, join_style="mitre").union(sg.Polygon(points[4:]).buffer(0.1, join_style="mitre"))

    # -- the scratch simulation ------------------------------------------------------------------------------
    def _simulate(self, start: np.ndarray, targets: list[np.ndarray]) -> np.ndarray:
        """The block's keypoints after the agent, put at rest at ``start``, follows ``targets`` (one per env step)."""
        env, block = self.env, self.env.block
        space = pymunk.Space()
        space.gravity = 0, 0
        space.damping = env.space.damping
        body = pymunk.Body(block.mass, block.moment)
        originals = self._shapes()
        shapes = [pymunk.Poly(body, shape.get_vertices()) for shape in originals]
        for copy, shape in zip(shapes, originals):
            copy.friction = shape.friction
        body.center_of_gravity = block.center_of_gravity
        body.angle = block.angle          # before the position: pymunk turns a body about its centre of gravity
        body.position = block.position
        agent = pymunk.Body(body_type=pymunk.Body.KINEMATIC)
        agent.position = tuple(start)
        disc = pymunk.Circle(agent, AGENT_RADIUS)
        disc.friction = list(env.agent.shapes)[0].friction
        space.add(body, *shapes, agent, disc)
        substeps = int(round(1.0 / (env.dt * env.control_hz)))
        for target in [*targets, targets[-1], targets[-1]]:  # two steps of settling, as the executed stroke has
            for _ in range(substeps):
                velocity = np.asarray(agent.velocity)
                acceleration = env.k_p * (target - np.asarray(agent.position)) - env.k_v * velocity
                agent.velocity = tuple(velocity + acceleration * env.dt)
                space.step(env.dt)
        return keypoints(body.position, body.angle, self._vertices())

    def _strokes(self):
        """Candidate strokes: (start, targets, label) for contact points every ~12 px along the T's outline."""
        block = self.env.block
        outline = self._outline(block.position, block.angle)
        ring = outline.exterior
        for distance in np.arange(0.0, ring.length, 12.0):
            point = np.asarray(ring.interpolate(distance).coords[0])
            ahead = np.asarray(ring.interpolate(distance + 1.0).coords[0])
            tangent = (ahead - point) / max(np.linalg.norm(ahead - point), 1e-9)
            normal = np.array([tangent[1], -tangent[0]])
            if outline.contains(sg.Point(point + 2.0 * normal)):
                normal = -normal
            start, approach = point + STANDOFF * normal, point + (STANDOFF + APPROACH) * normal
            if np.any(start < WALL_LOW) or np.any(start > WALL_HIGH) or outline.distance(sg.LineString([start, approach])) < AGENT_RADIUS + 2.0:
                continue
            for length in LENGTHS:
                end = point + (AGENT_RADIUS - length) * normal
                steps = max(1, int(np.ceil(np.linalg.norm(end - start) / (0.5 * self.speed))))
                targets = [start + (end - start) * (k + 1) / steps for k in range(steps)]
                yield approach, start, targets, f"push at {distance:.0f} px of the outline, {length:.0f} px deep"

    def _choose(self) -> None:
        goal = self._goal_keypoints()
        block = self.env.block
        now = float(np.linalg.norm(keypoints(block.position, block.angle, self._vertices()) - goal, axis=1).mean())
        scored = []
        for approach, start, targets, label in self._strokes():
            after = float(np.linalg.norm(self._simulate(start, targets) - goal, axis=1).mean())
            scored.append((now - after, approach, start, targets, label))
        best = max(gain for gain, *_ in scored)
        pool = [s for s in scored if s[0] >= (1.0 - self.tolerance) * best] if best > 0 else scored
        gain, approach, start, targets, label = pool[int(self.rng.integers(len(pool)))]
        self.strategy = self.strategy or label.split(",")[0]
        self.stroke, self.lined_up, self.waited = (approach, start, targets), False, 0

    # -- travel ------------------------------------------------------------------------------------------------
    def _toward(self, position: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """The next target from ``position`` toward ``goal``: straight when the way is clear of the T, else round it."""
        block = self.env.block
        outline = self._outline(block.position, block.angle)
        if sg.LineString([position, goal]).distance(outline) >= CLEARANCE or np.linalg.norm(goal - position) < 1.0:
            step = goal - position
        else:
            centre = np.asarray(outline.centroid.coords[0])
            radius = max(float(np.linalg.norm(position - centre)), float(outline.hausdorff_distance(sg.Point(centre))) + CLEARANCE)
            here = np.arctan2(*(position - centre)[::-1])
            there = np.arctan2(*(goal - centre)[::-1])
            turn = (there - here + np.pi) % (2 * np.pi) - np.pi
            if abs(turn) < 1e-3:  # round the T already: straight in
                turn, radius = 0.0, float(np.linalg.norm(goal - centre))
            angle = here + np.sign(turn) * min(abs(turn), self.speed / radius)
            step = centre + radius * np.array([np.cos(angle), np.sin(angle)]) - position
        length = float(np.linalg.norm(step))
        if length > self.speed:
            step *= self.speed / length
        return np.clip(position + step, WALL_LOW, WALL_HIGH)

    def act(self, obs, info) -> np.ndarray:
        agent = np.asarray(self.env.agent.position, dtype=float)
        if self.plan:
            return self.plan.pop(0).astype(np.float32)
        if self.stroke is None:
            self._choose()
        approach, start, targets = self.stroke
        self.waited += 1
        if self.waited > PATIENCE:  # blocked on the way (a wall, the T moved): plan again
            self.stroke = None
            return agent.astype(np.float32)
        if not self.lined_up:
            self.lined_up = bool(np.linalg.norm(agent - approach) < 6.0)
            if not self.lined_up:
                return self._toward(agent, approach).astype(np.float32)
        at_rest = float(np.linalg.norm(np.asarray(self.env.agent.velocity))) < 20.0
        if np.linalg.norm(agent - start) < 2.5 and at_rest:
            back = targets[-1] + (start - targets[-1]) * min(1.0, 12.0 / max(float(np.linalg.norm(start - targets[-1])), 1e-9))
            self.plan = [t + self.rng.normal(0.0, 0.5, 2) for t in targets] + [targets[-1]] * 2 + [back]
            self.stroke = None
            return self.plan.pop(0).astype(np.float32)
        step = start - agent
        return (agent + step * min(1.0, self.speed / max(float(np.linalg.norm(step)), 1e-9))).astype(np.float32)
