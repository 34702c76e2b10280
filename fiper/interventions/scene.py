"""Reward programs whose geometry comes from the episode's scene, bound after every reset.

A fixed :class:`~fiper.interventions.rewards.KeepOut` centre suits one known obstacle. In a stress
sweep the obstacle moves from episode to episode, so :class:`SceneKeepOut` reads it from the
environment each episode (``env.scene_obstacles()``), as a vision-language model would read it
from the camera. Anything with a ``bind(env)`` method is bound the same way (:func:`bind_scene`).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from fiper.interventions.rewards import REWARDS, KeepOut


@runtime_checkable
class SceneAware(Protocol):
    """A reward (or any steering part) that reads the scene once per episode, after ``env.reset``."""

    def bind(self, env: Any) -> None: ...


def scene_obstacles(env: Any) -> list[dict[str, Any]]:
    """The env's ``scene_obstacles()`` (through gymnasium wrappers), or a clear error naming the fix."""
    inner = getattr(env, "unwrapped", env)
    get = getattr(inner, "scene_obstacles", None)
    if not callable(get):
        raise TypeError(
            f"{type(inner).__name__} has no scene_obstacles(): give it one returning "
            "[{'center': [x, y(, z)], 'radius': r}, ...] for the episode, or steer with a fixed "
            "KeepOut(center=..., radius=...) instead of SceneKeepOut"
        )
    return list(get())


class SceneKeepOut:
    """Keep-out barrier around every obstacle of the current episode; 0 when there is none.

    Same barrier as :class:`KeepOut` (``margin``, ``tau``, ``segments``); centres and radii come
    from :func:`scene_obstacles` at :meth:`bind`. ``radius`` overrides the scene's radii.
    """

    def __init__(self, margin: float = 0.02, tau: float = 0.01, shape: str = "cylinder", segments: bool = True,
                 radius: float | None = None):
        self.margin, self.tau, self.shape, self.segments, self.radius = margin, tau, shape, segments, radius
        KeepOut([0.0, 0.0], 1.0, margin, tau, shape, segments)  # validates the knobs now, not at the first alarm
        self.parts: list[KeepOut] | None = None

    def bind(self, env: Any) -> None:
        """Read this episode's obstacles (call after ``env.reset``; ``run_episode`` does)."""
        parts = []
        for i, ob in enumerate(scene_obstacles(env)):
            if "center" not in ob or ("radius" not in ob and self.radius is None):
                raise ValueError(f"scene obstacle {i} is {ob!r}: it needs 'center' and 'radius' entries")
            radius = self.radius if self.radius is not None else ob["radius"]
            parts.append(KeepOut(ob["center"], radius, self.margin, self.tau, self.shape, self.segments))
        self.parts = parts

    def __call__(self, trajectory: Tensor) -> Tensor:
        if self.parts is None:
            raise RuntimeError("SceneKeepOut is not bound to a scene: call bind(env) after env.reset "
                               "(fiper.control.run_episode does it for every episode)")
        out = trajectory.sum((1, 2)) * 0.0  # keeps the graph when the scene has no obstacle
        for part in self.parts:
            out = out + part(trajectory)
        return out

    def value_and_grad(self, trajectory: Tensor) -> tuple[Tensor, Tensor]:
        """Reward and gradient in closed form: the sum of every obstacle's KeepOut.value_and_grad."""
        if self.parts is None:
            self(trajectory)  # raises: not bound
        value, grad = trajectory.new_zeros(trajectory.shape[0]), torch.zeros_like(trajectory)
        for part in self.parts:
            r, g = part.value_and_grad(trajectory)
            value, grad = value + r, grad + g
        return value, grad


def scene_aware_parts(rewards: Any) -> list[SceneAware]:
    """Every scene-aware reward in ``rewards`` (one, a list, checked or weighted-sum wrapped)."""
    stack, parts = list(rewards) if isinstance(rewards, (list, tuple)) else [rewards], []
    while stack:
        r = stack.pop()
        if isinstance(r, SceneAware):
            parts.append(r)
        inner = getattr(r, "program", None)
        if inner is not None:
            stack.append(inner)
        stack.extend(term[1] for term in getattr(r, "terms", ()))
    return parts


def bind_scene(rewards: Any, env: Any) -> None:
    """Bind every scene-aware reward in ``rewards`` to ``env``'s current episode."""
    for part in scene_aware_parts(rewards):
        part.bind(env)


REWARDS.register("scene_keep_out", SceneKeepOut)
