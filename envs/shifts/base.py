"""Shift families: base class, registry and parsing of composed shift lists.

A shift family perturbs one aspect of a task with a severity in [0, 1]; 0 is exactly nominal.
Per episode a family is *bound*: it draws its random choices (direction, side, time) from its
own random stream, derived from the episode seed and the family name, so results are
deterministic given the seed and independent of which other shifts are composed with it.
A bound shift acts through hooks the environment calls at fixed points of reset and step.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

if TYPE_CHECKING:  # only for annotations: the env imports this module, not the reverse
    import mujoco

    from envs.base import TaskEnv

SHIFTS: dict[str, type[Shift]] = {}


class Shift:
    """One bound shift: a family at a severity for one episode. Hooks default to no-ops."""

    name: ClassVar[str]
    description: ClassVar[str]
    #: 'benign' (should not change the outcome), 'harmful' (should cause failures at high
    #: severity) or 'graded' (benign when small, harmful when large).
    expected: ClassVar[str]
    edits_model: ClassVar[bool] = False  # needs the MuJoCo model recompiled for the episode
    image_only: ClassVar[bool] = False  # acts on rendered images only

    def __init__(self, severity: float, rng: np.random.Generator, env: TaskEnv):
        self.severity, self.rng, self.env = float(severity), rng, env
        self.params: dict[str, Any] = {}

    def init_pose_ood(self) -> float:
        """How far outside the training range initial poses are drawn (0 = nominal)."""
        return 0.0

    def edit_spec(self, spec: mujoco.MjSpec, init: Mapping[str, Any]) -> None:
        """Edit the episode's model before it is compiled (only if ``edits_model``)."""

    def on_reset(self) -> None:
        """Called after the initial state is set."""

    def transform_action(self, action: np.ndarray) -> np.ndarray:
        return action

    def before_physics(self, t: int) -> None:
        """Called at env step ``t`` after the control is set, before the physics steps."""

    def transform_obs(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return obs

    def obstacles(self) -> list[dict[str, Any]]:
        """Obstacles this shift placed in the episode's scene: ``{'center': [x, y, z], 'radius': r, ...}``."""
        return []


def register_shift(cls: type[Shift]) -> type[Shift]:
    if cls.expected not in ("benign", "harmful", "graded"):
        raise ValueError(f"shift {cls.__name__}.expected must be benign, harmful or graded, got {cls.expected!r}")
    if cls.name in SHIFTS:
        raise ValueError(f"a shift named {cls.name!r} is already registered ({SHIFTS[cls.name].__name__})")
    SHIFTS[cls.name] = cls
    return cls


def unknown_shift(name: str) -> ValueError:
    return ValueError(f"unknown shift {name!r}; known shifts: {', '.join(sorted(SHIFTS))}")


ShiftList = tuple[tuple[str, float], ...]


def _one(item: Any) -> tuple[str, float]:
    if isinstance(item, str):
        name, sep, sev = item.partition(":")
        if not sep:
            raise ValueError(f"shift {item!r} has no severity; write it as 'name:severity', e.g. '{item}:0.5'")
        try:
            return name.strip(), float(sev)
        except ValueError:
            raise ValueError(f"shift {item!r}: severity {sev!r} is not a number") from None
    if isinstance(item, Mapping):
        if set(item) != {"name", "severity"}:
            raise ValueError(f"a shift given as a mapping needs exactly the keys 'name' and 'severity', got {sorted(item)}")
        return str(item["name"]), float(item["severity"])
    if isinstance(item, Iterable):
        pair = list(item)
        if len(pair) == 2:
            return str(pair[0]), float(pair[1])
    raise ValueError(f"cannot read {item!r} as a shift; give (name, severity), {{'name':..,'severity':..}} or 'name:severity'")


def parse_shifts(shifts: Any) -> ShiftList:
    """Normalise a shift list to ((name, severity), ...) and validate it.

    Accepts None, a mapping {name: severity}, or a sequence whose items are (name, severity)
    pairs, {'name', 'severity'} mappings or 'name:severity' strings.
    """
    if shifts is None:
        return ()
    if isinstance(shifts, str):
        shifts = [s for s in shifts.split(",") if s.strip()]
    if isinstance(shifts, Mapping) and set(shifts) != {"name", "severity"}:
        items = [(str(k), float(v)) for k, v in shifts.items()]
    elif isinstance(shifts, Mapping):
        items = [_one(shifts)]
    else:
        items = [_one(s) for s in shifts]
    seen: set[str] = set()
    for name, sev in items:
        if name not in SHIFTS:
            raise unknown_shift(name)
        if not (math.isfinite(sev) and 0.0 <= sev <= 1.0):
            raise ValueError(f"shift {name!r}: severity must lie in [0, 1] (0 = nominal), got {sev}")
        if name in seen:
            raise ValueError(f"shift {name!r} is listed twice; give each family once")
        seen.add(name)
    return tuple(items)


def shift_label(shifts: ShiftList) -> tuple[str, float]:
    """(label, severity) for episode metadata: 'none'/0.0, or names joined by '+' and the max severity."""
    if not shifts:
        return "none", 0.0
    return "+".join(n for n, _ in shifts), max(s for _, s in shifts)


def shift_rng(seed: int, tag: str) -> np.random.Generator:
    """Independent random stream for ``tag`` within the episode ``seed``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(tag.encode())]))
