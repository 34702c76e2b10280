"""The scripted-expert interface.

An expert is built from an environment (``factory(env) -> Expert``) and may read privileged
state through ``env.unwrapped`` (true object poses, the physics model). The collection loop
calls ``reset(seed)`` right after ``env.reset(seed=seed)`` and ``act(obs, info)`` every step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Expert(Protocol):
    """A demonstrator for one environment instance."""

    def reset(self, seed: int | None = None) -> None:
        """Start a new episode; ``seed`` makes its random choices reproducible."""

    def act(self, obs: Mapping[str, np.ndarray], info: Mapping[str, Any]) -> np.ndarray:
        """The next action (same layout as the env's action space)."""


class WaypointFollower:
    """Plays a queue of Cartesian targets, one per control step, with small Gaussian jitter."""

    def __init__(self, noise: float):
        self.noise = noise
        self.queue: list[np.ndarray] = []

    def extend(self, points: list[np.ndarray]) -> None:
        self.queue.extend(np.asarray(p, float) for p in points)

    def clear(self) -> None:
        self.queue.clear()

    def __len__(self) -> int:
        return len(self.queue)

    def pop(self, rng: np.random.Generator) -> np.ndarray:
        p = self.queue.pop(0)
        return p + rng.normal(0.0, self.noise, p.shape)


def straight(a: np.ndarray, b: np.ndarray, step: float) -> list[np.ndarray]:
    """Points from a (exclusive) to b (inclusive) spaced at most ``step`` apart."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    n = max(1, int(np.ceil(np.linalg.norm(b - a) / step)))
    return [a + (b - a) * (i / n) for i in range(1, n + 1)]
