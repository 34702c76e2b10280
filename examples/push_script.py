"""The scripted push both pushing examples' experts follow, on positions: get behind the cube on the side away from
the goal (high, clear of it), go down, push through the contact point behind the cube towards the goal, and go round
again when the tool slips off the line."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class PushPhases:
    """An expert's life cycle (``reset(seed)``, ``strategy``: the phase it is in); subclasses give ``act(obs, info)``."""

    def __init__(self, env=None):
        self.phase = "behind"

    def reset(self, seed: int | None = None) -> None:
        self.phase = "behind"

    @property
    def strategy(self) -> str:
        return self.phase


@dataclass(frozen=True)
class PushGeometry:
    """Distances in metres (heights above the table) and the push's speed limit, in the env's action units."""

    behind: float  # cube centre to the tool before a push
    high: float  # height that clears the cube
    low: float  # height level with the cube's centre
    contact: float  # cube centre to the tool while it pushes
    advance: float  # how far the push target leads the contact point towards the goal
    push_speed: float  # largest action while in contact, so the cube is pushed, not struck
    off_line: float  # distance off the line behind the cube at which the push starts again


def push_target(phase: str, tool: np.ndarray, cube: np.ndarray, goal: np.ndarray, g: PushGeometry) -> tuple[str, np.ndarray, float]:
    """The phase ('behind', 'down', 'push') after this observation, the tool's target position (3,) and the action's
    limit; ``tool`` and ``cube`` are positions (3,), ``goal`` the cube's goal (its first two entries are read)."""
    to_goal = goal[:2] - cube[:2]
    direction = to_goal / max(np.linalg.norm(to_goal), 1e-6)
    start = cube[:2] - g.behind * direction  # where a push towards the goal starts
    offset = tool[:2] - cube[:2]
    lateral = abs(direction[0] * offset[1] - direction[1] * offset[0])
    behind = -(offset @ direction)  # > 0: the tool is on the far side of the cube from the goal
    if phase == "push" and (lateral > g.off_line or behind < 0.01):
        phase = "behind"
    if phase == "behind" and np.linalg.norm(tool[:2] - start) < 0.01:
        phase = "down"
    if phase == "down" and tool[2] < g.low + 0.01:
        phase = "push"
    if phase == "behind":
        low_beside = tool[2] < g.high - 0.02 and np.linalg.norm(offset) < g.behind + 0.03  # rise before going round
        return phase, np.append(tool[:2] if low_beside else start, g.high), 1.0
    if phase == "down":
        return phase, np.append(start, g.low), 1.0
    advance = min(g.advance, float(np.linalg.norm(to_goal)))  # via the contact point, which corrects a sideways offset
    return phase, np.append(cube[:2] - g.contact * direction + advance * direction, g.low), g.push_speed
