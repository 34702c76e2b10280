"""Seconds per env step of a task env: the one definition recorded with its rollouts (attrs ``control_period_s``).

Every warning time in seconds is (env steps) x this period, so it comes from the env itself, never
from a default: gymnasium's MuJoCo envs and fiper's tasks (envs/base.py) expose ``dt``; ManiSkill's
(and robosuite's) envs ``control_timestep``; lerobot's gym-hil envs ``control_dt`` (beside their
``physics_dt``); an env may instead declare ``control_period_s``; a user's config may state it (``env.control_period_s=``). A control rate (``control_hz``, gym-pusht's;
``control_freq``, robosuite's) is read before ``dt``: gym-pusht's ``dt`` is its physics substep, 0.01 s,
ten of which make one 0.1 s step.
"""

from __future__ import annotations

import math
from typing import Any

# Looked up in this order on env.unwrapped, then on the env itself: a declared period or control rate before `dt`, which
# an env stepping its physics several times per step may keep as the physics step.
ENV_ATTRIBUTES = ("control_period_s", "control_timestep", "control_dt", "control_hz", "control_freq", "dt")
RATE_ATTRIBUTES = ("control_hz", "control_freq")  # steps per second: the period is their inverse


#: The plausible seconds per env step of a robot's control loop (2 kHz .. one step per 10 s): a period outside it was
#: given in another unit (milliseconds, or a rate in Hz), which would scale every warning time in seconds.
MIN_PERIOD_S, MAX_PERIOD_S = 5e-4, 10.0
PERIOD_UNIT = "give it in seconds per env step, e.g. 0.1 for 10 Hz"


def _positive(value: Any, where: str, what: str, fix: str) -> float:
    """``value`` as a finite positive float, or a ValueError naming ``where``, ``what`` it should be and ``fix``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not (math.isfinite(number) and number > 0):
        raise ValueError(f"{where} = {value!r} is not a positive number of {what}; {fix}")
    return number


def plausible_seconds(seconds: float, where: str, fix: str) -> float:
    """``seconds`` per env step when within MIN_PERIOD_S .. MAX_PERIOD_S, else a ValueError naming ``where`` and ``fix``."""
    if not MIN_PERIOD_S <= seconds <= MAX_PERIOD_S:
        raise ValueError(f"{where} = {seconds:g} s per env step lies outside the plausible control periods {MIN_PERIOD_S:g} .. "
                         f"{MAX_PERIOD_S:g} s (a period in milliseconds, or a rate in Hz?); {PERIOD_UNIT}; {fix}")
    return seconds


def positive_seconds(value: Any, where: str, fix: str = "declare the env's real control period (e.g. env.control_period_s=0.05)") -> float:
    """``value`` as seconds per env step within the plausible range, or a ValueError naming ``where`` and ``fix``."""
    return plausible_seconds(_positive(value, where, "seconds per env step", fix), where, fix)


def rate_seconds(rate: Any, where: str, fix: str) -> float:
    """Seconds per env step of a control ``rate`` in steps per second (an env's ``control_hz``, a dataset's ``fps``):
    1 / ``rate`` within the plausible range, or a ValueError naming ``where`` and ``fix``."""
    hz = _positive(rate, where, "steps per second", fix)
    return plausible_seconds(1.0 / hz, f"1 / {where}", fix)


def recorded_period(given: Any, rate: Any, rate_where: str, *, rate_required: bool, example: str = "0.05") -> float | None:
    """Seconds per step of a recorded dataset: 1 / its ``rate`` (Hz; named ``rate_where``), or ``given`` (the user's
    ``control_period_s``) where the rate is absent or no plausible rate. Both are checked; a given period contradicting a
    plausible rate is refused, and so is no period at all when ``rate_required`` (else None)."""
    if given is not None:
        given = positive_seconds(given, "control_period_s", f"give the dataset's period in seconds per step (e.g. {example})")
    if rate is None and not rate_required:
        return given
    fix = "pass control_period_s=<seconds per step> (1 / the rate it was recorded at) to state the real period"
    try:
        read = rate_seconds(rate, rate_where, fix)
    except ValueError:
        if given is None:
            raise
        return given  # the dataset's rate is no plausible one: the period given states it
    if given is not None and abs(given - read) > 1e-9 * read:
        raise ValueError(f"control_period_s={given:g} contradicts the dataset's {rate_where} = {float(rate):g} Hz ({read:g} s "
                         "per step); leave control_period_s out")
    return read


def declared_period(env: Any) -> tuple[float, str] | None:
    """(seconds, 'where') the env declares per step (``control_period_s``, ``control_timestep``, ``control_dt``,
    1 / ``control_hz`` or ``control_freq``, ``dt``, the first found), or None; a method of that name (dm_control's ``control_timestep()``) is
    not read."""
    for obj in (getattr(env, "unwrapped", env), env):
        for name in ENV_ATTRIBUTES:
            value = getattr(obj, name, None)
            if value is None or callable(value):
                continue
            where = f"{type(obj).__name__}.{name}"
            if name in RATE_ATTRIBUTES:
                seconds = rate_seconds(value, where, "declare the env's real control rate in steps per second")
                return seconds, f"1 / {where} ({float(value):g} Hz)"
            return positive_seconds(value, where), where
    return None


def control_period_s(env: Any, configured: Any = None, *, env_name: str = "the env",
                     command_line: str = "++env.control_period_s=<seconds>") -> float:
    """Seconds per env step of ``env``: ``configured`` (the config's ``env.control_period_s``) or what the env declares.

    Both given and different is an error (one of them is wrong); neither is an error naming both fixes, the config's
    as the entry point takes it on the ``command_line``, and any period an object the env holds declares.
    """
    declared = declared_period(env)
    if configured is not None:
        seconds = positive_seconds(configured, "env.control_period_s")
        if declared is not None and not math.isclose(seconds, declared[0], rel_tol=1e-6):
            raise ValueError(f"env.control_period_s={seconds:g} s but {env_name} declares {declared[1]} = {declared[0]:g} s "
                             "per step; drop env.control_period_s= or make it match the env")
        return seconds
    if declared is None:
        nested = "".join(f"; {where} = {seconds:g} s is declared by an object the env holds: if one step of the env is "
                         f"one step of it, that is the period" for seconds, where in inner_periods(env))
        raise ValueError(f"cannot tell how many seconds one step of {env_name} "
                         f"({type(getattr(env, 'unwrapped', env)).__name__}) lasts, so warning times in seconds would be "
                         "wrong: add `control_period_s: <seconds per env step>` to the env group "
                         f"({command_line} on the command line), or declare `dt` (seconds per step) on the "
                         f"env as gymnasium's MuJoCo envs do{nested}. A model whose steps have no duration (a discrete-time "
                         "one, as MountainCarContinuous-v0's) takes the period you mean it to have; 1 gives every time in "
                         "seconds in steps")
    return declared[0]


def inner_periods(env: Any) -> list[tuple[float, str]]:
    """(seconds, 'where') declared by the objects the env holds as attributes (gymnasium-robotics' PointMaze keeps the
    MuJoCo env it steps as ``point_env``, whose ``dt`` the maze does not declare): named in the message of an env that
    declares no period, never used, since the outer env may step an inner one several times per step. A dm_control
    environment held so (gym-aloha's AlohaEnv keeps it as ``_env``) is named by its ``control_timestep()``."""
    outer = getattr(env, "unwrapped", env)
    found = []
    for name, value in sorted(vars(outer).items()) if hasattr(outer, "__dict__") else ():
        if value is outer or value is env or isinstance(value, (type, int, float, str, bytes, dict, list, tuple)):
            continue
        try:
            declared = declared_period(value) or dm_control_timestep(value)
        except Exception:  # a hint only: an attribute that cannot be read names nothing
            continue
        if declared is not None:
            found.append((declared[0], f"{type(outer).__name__}.{name}: {declared[1]}"))
    return found


def dm_control_timestep(obj: Any) -> tuple[float, str] | None:
    """(seconds, 'where') of a dm_control environment's ``control_timestep()`` method (a hint only: fiper never calls an
    env's methods to take its period), None for any other object."""
    method = getattr(obj, "control_timestep", None)
    if not callable(method) or not type(obj).__module__.startswith("dm_control"):
        return None
    where = f"{type(obj).__name__}.control_timestep()"
    return positive_seconds(method(), where), where
