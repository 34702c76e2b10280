"""Building a user's env from its factory and checking what fiper needs of it: the gymnasium API, one env stepping
a 1-d Box action, an expert with reset/act, a severity in [0, 1], the task's name, its declared time limit.

Factories are named as 'module:function' strings (``resolve``); fiper never imports a particular environment package.
Every refusal names the setting and the fix (``SetupError``).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import logging
import math
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np


GL_FIX = ("MuJoCo found no OpenGL backend to render with: set MUJOCO_GL=egl (a GPU or Mesa's EGL) or MUJOCO_GL=osmesa before "
          "Python starts, e.g. `MUJOCO_GL=egl python -m launch.collect ...` (launch's entry points default to egl on Linux "
          "without a display when mujoco is not yet imported)")


def default_offscreen_gl() -> None:
    """On Linux without a display, MUJOCO_GL defaults to 'egl' (before mujoco is imported: it reads the variable then),
    so a user's env that renders (``render_mode='rgb_array'``, camera observations) works headless; PyOpenGL's
    import-time notice and dm_control's absl INFO lines (its GL backend, its MuJoCo release, at every stage under
    hydra's INFO logging) are silenced."""
    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY") and "mujoco" not in sys.modules:
        os.environ.setdefault("MUJOCO_GL", "egl")
    for name in ("OpenGL.acceleratesupport", "absl"):
        logging.getLogger(name).setLevel(logging.WARNING)


def resolve(spec: str) -> Callable[..., Any]:
    """The object named by 'package.module:attribute' (e.g. 'envs:make_env') or 'path/to/file.py:attribute'."""
    if not isinstance(spec, str) or spec.count(":") != 1:
        raise ValueError(f"expected 'module:function' or 'path/to/file.py:function', got {spec!r} (e.g. 'envs:make_env', "
                         "'my_pkg.my_envs:make' or '/home/me/envs.py:make')")
    module_name, attr = spec.split(":")
    from fiper.interventions.loading import import_file, names_a_file  # one rule for a file path, and its import

    if names_a_file(module_name):
        try:
            module = import_file(Path(module_name).expanduser())
        except (OSError, ImportError) as err:
            raise ValueError(f"cannot import the file {module_name!r} of {spec!r}: {err}") from err
    else:
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            raise ValueError(f"cannot import module {module_name!r} of {spec!r}: {err}. Is it installed or on PYTHONPATH? "
                             "(or give the file: 'path/to/file.py:function')") from err
    try:
        obj = getattr(module, attr)
    except AttributeError:
        public = sorted(n for n in vars(module) if not n.startswith("_") and callable(getattr(module, n)))
        raise ValueError(f"module {module_name!r} has no attribute {attr!r}; its callables: {public}") from None
    if not callable(obj):
        raise ValueError(f"{spec!r} is not callable")
    return obj


def accepts(fn: Callable[..., Any], name: str) -> bool:
    """Whether ``fn`` takes a keyword ``name`` (or any keyword, through ``**kwargs``)."""
    params = inspect.signature(fn).parameters
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def call_with_accepted(fn: Callable[..., Any], optional: Mapping[str, Any], required: Mapping[str, Any] | None = None) -> Any:
    """Call ``fn`` with the ``optional`` keywords its signature accepts and all ``required`` ones.

    A factory with ``**kwargs`` receives everything. Lets the same config drive the built-in
    task factory and a user's own factory with a smaller signature.
    """
    params = inspect.signature(fn).parameters
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    kwargs = {k: v for k, v in optional.items() if takes_all or k in params}
    return fn(**kwargs, **(required or {}))


def make_env_from_config(cfg: Mapping[str, Any]):
    """Build an env from a config with 'factory' ('module:function') and optional fields.

    name, obs_mode and shifts are passed when set and the factory accepts them; 'kwargs' always is.
    Shifts given to a factory that cannot take them raise instead of being silently dropped.
    """
    if "factory" not in cfg:
        raise ValueError("the env config needs a 'factory' field ('module:function'), e.g. factory: envs:make_env")
    factory = resolve(cfg["factory"])
    # an unset field (null, or no shifts) is not passed: a factory forwarding **kwargs to gym.make gets only kwargs
    optional = {k: cfg[k] for k in ("name", "obs_mode") if cfg.get(k) is not None}
    if cfg.get("shifts"):
        optional["shifts"] = cfg["shifts"]
    if optional.get("shifts") and not accepts(factory, "shifts"):
        raise ValueError(f"env.shifts={optional['shifts']} was given but factory {cfg['factory']} has no 'shifts' parameter")
    kwargs = dict(cfg.get("kwargs") or {})
    try:
        with named_on_error(f"env.factory={cfg['factory']}", factory, {**optional, **kwargs}):
            env = call_with_accepted(factory, optional, kwargs)
    except TypeError as err:
        refused = (group_fields_refused(err, {k: optional[k] for k in ("name", "obs_mode") if k in optional})
                   or shifts_refused(err, optional.get("shifts"), cfg["factory"]))
        if refused is None:
            raise
        raise refused from err
    return checked_env(wrapped(env, cfg), f"env.factory={cfg['factory']}")


def wrapped(env: Any, cfg: Mapping[str, Any]) -> Any:
    """``env`` inside the env config's ``wrappers`` ('module:Class' each, called with the env, innermost first): what a
    factory one does not write (``gymnasium:make``) cannot add, e.g. ``fiper.wrappers:TerminationIsSuccess``. Every env
    a config builds gets them, a shift's own factory's too."""
    specs = cfg.get("wrappers") or []
    if isinstance(specs, str) or not isinstance(specs, (list, tuple)):
        raise ValueError(f"env.wrappers={specs!r} is not a list: give ['module:Class', ...], e.g. "
                         "'+env.wrappers=[\"fiper.wrappers:TerminationIsSuccess\"]'")
    for spec in specs:
        wrapper = resolve(spec)
        with named_on_error(f"env.wrappers: {spec}", wrapper, {}):
            env = wrapper(env)
    return env


def group_fields_refused(err: TypeError, fields: Mapping[str, Any]) -> SetupError | None:
    """The error to raise instead of the TypeError of an env refusing the env group's ``name`` / ``obs_mode``, which a
    factory taking **kwargs (gymnasium.make, or one forwarding to the env's constructor) passes on; None for another
    TypeError. ``name`` also names the task, so the fix keeps that way open: a factory parameter of its own."""
    if not any(f"'{key}'" in str(err) for key in fields):
        return None
    given = " and ".join(f"env.{key}={value!r}" for key, value in fields.items())
    notes = "".join(f"\n{note}" for note in getattr(err, "__notes__", ()))
    return SetupError(
        f"{err}{notes}\n{given} reached the env through a factory taking **kwargs, which passes them on: set env.name=null "
        "env.obs_mode=null in the env group (the default group's are fiper's own tasks'; the task is then named from the "
        "env's id or class), or, to name the task, give the factory parameters of its own that it keeps, "
        "def make(name=None, obs_mode=None, **kwargs) (docs/envs.md, 'Env config fields')")


def shifts_refused(err: TypeError, shifts: Any, factory: str) -> SetupError | None:
    """The error to raise instead of the TypeError of an env refusing ``shifts``, which a factory taking **kwargs passes
    on: a sweep cell whose shift has no factory of its own (``factories.<shift>``) is built by the env factory with
    ``shifts=[[shift, severity]]``, which only fiper's tasks take. None for another TypeError."""
    if not shifts or "'shifts'" not in str(err):
        return None
    names = sorted({str(entry[0]) if isinstance(entry, (list, tuple)) and entry else str(entry) for entry in shifts})
    notes = "".join(f"\n{note}" for note in getattr(err, "__notes__", ()))
    return SetupError(
        f"{err}{notes}\nshifts {names} have no factory of their own, so they were given to env.factory={factory} as "
        f"shifts={list(shifts)!r}, which its env does not take: give one factory per shift, called as f(severity=..., "
        f"**env.kwargs) (launch.stress and launch.act: +factories.{names[0]}=my_pkg.envs:{names[0]}; launch.pipeline: "
        f"+rollouts.factories.{names[0]}=...), or remove the cells naming them (launch.pipeline's act.cells default to "
        "fiper's own tasks' shifts: give act.cells of your env's shifts, or act=null) (docs/envs.md, 'Your own env, end "
        "to end')")


@contextmanager
def named_on_error(setting: str, factory: Callable[..., Any], kwargs: Mapping[str, Any]) -> Iterator[None]:
    """An error raised inside a user's env factory (or the env it builds) gets a note naming the setting and the call,
    so that the env's own message (panda-gym's "The 'render' argument is must be in {'rgb_array', 'human'}") says
    where it came from; its type and message are kept. The entry points print the note after the message."""
    try:
        yield
    except Exception as err:
        args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        err.add_note(f"(raised while building the env: {setting}, called as {getattr(factory, '__name__', 'factory')}({args}))")
        add_gl_note(err)
        add_registration_note(err, kwargs.get("id"))
        raise


def add_gl_note(err: BaseException) -> None:
    """Add GL_FIX to an OpenGL error (MuJoCo rendering without a backend) that does not name MUJOCO_GL already."""
    if "OpenGL" in str(err) and "MUJOCO_GL" not in str(err) and GL_FIX not in getattr(err, "__notes__", ()):
        err.add_note(GL_FIX)


def add_registration_note(err: BaseException, env_id: Any) -> None:
    """Add how to register the ids of another package to gymnasium's NamespaceNotFound ("Have you installed the proper
    package?"): gymnasium 1.x registers a package's ids (shimmy's ``dm_control/…``) only once the package is imported,
    which ``gym.make`` given as the factory does when the id names the module, ``module:namespace/name``."""
    if not isinstance(err, gym.error.NamespaceNotFound) or not isinstance(env_id, str) or ":" in env_id or "/" not in env_id:
        return
    namespace = env_id.split("/")[0]
    module = REGISTERING_MODULES.get(namespace) or installed_module_named(namespace) or "<the package that registers them>"
    err.add_note(f"gymnasium registers the {namespace}/ ids only once {module} is imported, installed or not: name it in the id, "
                 f"env.kwargs.id={module}:{env_id}, or import it in an env factory of your own (gymnasium.register_envs({module}))")


REGISTERING_MODULES = {"dm_control": "shimmy", "bsuite": "shimmy", "DmLab": "shimmy", "ALE": "ale_py", "Meta-World": "metaworld"}


def installed_module_named(namespace: str) -> str | None:
    """An installed top-level module named as the id namespace, lower-cased with '-' as '_' or dropped (gym_hil/...,
    a namespace 'My-Lab' of a package my_lab or mylab), else None."""
    lower = namespace.lower()
    for name in dict.fromkeys((namespace, lower.replace("-", "_"), lower.replace("-", ""))):
        try:
            if name.isidentifier() and importlib.util.find_spec(name) is not None:
                return name
        except (ImportError, ValueError):
            continue
    return None


def check_severity(severity: Any, shift: str) -> float:
    """A shift factory's severity as a float in [0, 1] (0 the nominal task, 1 the strongest shift), else a ValueError
    naming the shift: for the factories of your own env's shifts, called as f(severity=..., **env.kwargs)."""
    try:
        value = float(severity)
    except (TypeError, ValueError):
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{shift}: severity must be a number in [0, 1], got {severity!r}; 0 is the nominal task, 1 the strongest shift")
    return value


class SetupError(TypeError, ValueError):
    """A factory, expert or observation that does not give what fiper needs: a TypeError, and a ValueError so that
    the entry points end with its message (naming the setting and the fix) instead of a traceback."""


def checked_env(env: Any, where: str) -> Any:
    """``env`` when it has the gymnasium API (reset, step, action_space) and a continuous (Box) action space,
    else a TypeError naming ``where``: fiper's policies generate continuous action chunks."""
    missing = [name for name in ("reset", "step", "action_space", "observation_space") if getattr(env, name, None) is None]
    if missing:
        raise SetupError(f"{where} returned {type(env).__name__}, which is not a gymnasium env (it has no {', '.join(missing)}); "
                        "return the env itself, e.g. gymnasium.make('Reacher-v5') or an instance of your gymnasium.Env")
    space = env.action_space
    batched = envs_per_step(env)
    if batched is not None:
        n, single = batched
        raise SetupError(f"{where} returned a batched env (num_envs={n}; its action space {space}, one env's "
                        f"{single}); fiper runs one env and its policies act on one observation at a time: build one env, without "
                        "an env axis. ManiSkill: CPUGymWrapper(gymnasium.make(id, num_envs=1, sim_backend='cpu')) from "
                        "mani_skill.utils.wrappers.gymnasium, which also returns numpy values; a gymnasium VectorEnv: return the "
                        "env it vectorises")
    integer = isinstance(space, gym.spaces.Box) and np.dtype(space.dtype).kind not in "fc"
    if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1 or integer:
        raise SetupError(f"{where} returned an env whose action space is {space}; fiper's policies generate continuous action "
                        "chunks, so the env needs a 1-d gymnasium Box action space of floats. Wrap it (gymnasium.ActionWrapper) "
                        f"so that it takes a vector of floats, {action_wrapper_example(space)}")
    return env


def action_wrapper_example(space: Any) -> str:
    """How an ActionWrapper turns a vector of floats into an action of ``space``: the fix named when it is refused."""
    if isinstance(space, gym.spaces.Box) and len(space.shape) == 1:
        return (f"e.g. action_space = Box(low, high, {space.shape}, np.float32) and action(a) = np.rint(a).astype(np.{space.dtype}) "
                "(the policies' samples between the integers are rounded, not truncated)")
    if isinstance(space, gym.spaces.Box):
        return (f"e.g. action_space = Box(low.ravel(), high.ravel()) and action(a) = a.reshape({space.shape}) "
                "(one vector of every entry)")
    if isinstance(space, (gym.spaces.Dict, gym.spaces.Tuple)):
        return "e.g. one Box of every part's entries, split back into the parts in action(a)"
    return "e.g. a 1-d action in [-1, 1] whose sign picks a Discrete(2) choice"


def envs_per_step(env: Any) -> tuple[int, Any] | None:
    """(how many envs, one env's action space) when ``env`` steps several envs at once, else None: a ``num_envs`` above 1
    on it or on ``env.unwrapped`` (ManiSkill's batched envs, a gymnasium VectorEnv), or a ``single_action_space`` of
    another shape than its action space (a VectorEnv of one env). ManiSkill's one env (num_envs=1) takes one action
    and passes: its tensors with a leading env axis of 1 are read as they are (the observation stored as (1, D) per step)."""
    layers = [env, getattr(env, "unwrapped", env)]
    counts = [n for n in (getattr(layer, "num_envs", None) for layer in layers) if isinstance(n, (int, np.integer)) and not isinstance(n, bool)]
    single = next((sp for sp in (getattr(layer, "single_action_space", None) for layer in layers) if sp is not None), None)
    space = getattr(env, "action_space", None)
    reshaped = single is not None and getattr(single, "shape", None) != getattr(space, "shape", None)
    n = max(counts, default=1)
    if n > 1 or reshaped:
        return int(n), single if single is not None else "unknown"
    return None


def checked_expert(expert: Any, where: str) -> Any:
    """``expert`` when it has callable ``reset(seed)`` and ``act(obs, info)``, else a TypeError naming ``where``."""
    missing = [name for name in ("reset", "act") if not callable(getattr(expert, name, None))]
    if missing:
        raise SetupError(f"{where} returned {type(expert).__name__}, which has no {' or '.join(f'{m}()' for m in missing)}; an expert "
                        "is called as expert(env) and returns an object with reset(seed) and act(obs, info) -> action")
    for name, args in (("reset", ("seed",)), ("act", ("obs", "info"))):
        try:
            inspect.signature(getattr(expert, name)).bind(*args)
        except TypeError:
            raise SetupError(f"{where} returned {type(expert).__name__}, whose {name}{inspect.signature(getattr(expert, name))} cannot "
                             f"be called as {name}({', '.join(args)}): collection calls reset(seed) before each episode and "
                             "act(obs, info) -> action at each step") from None
        except ValueError:  # a builtin without a signature: called as it is
            pass
    return expert


def env_task_name(env: Any, configured: str | None = None) -> str:
    """The task an env's episodes belong to: the config's ``env.name``, else the env's gymnasium id
    (``env.spec.id``, e.g. 'Reacher-v5'), else its class name. Stores record it as attrs ``task``."""
    if configured:
        return str(configured)
    for obj in (env, getattr(env, "unwrapped", env)):
        spec = getattr(obj, "spec", None)
        if getattr(spec, "id", None):
            return str(spec.id)
    return type(getattr(env, "unwrapped", env)).__name__


def declared_step_limit(env) -> int | None:
    """The episode step limit an env declares (a TimeLimit wrapper, ``spec.max_episode_steps``, or a
    ``max_episode_steps`` attribute on any layer, as fiper's tasks have; under shimmy's bindings, the dm_control env's
    own time limit, which ends its episodes as truncated; under robosuite's GymWrapper, its ``horizon``), else None."""
    limits = [getattr(getattr(env, "spec", None), "max_episode_steps", None)]
    layer, seen = env, set()
    while layer is not None and id(layer) not in seen and hasattr(layer, "__dict__"):
        seen.add(id(layer))
        own = vars(layer)
        limits += [own.get("_max_episode_steps"), own.get("max_episode_steps"), dm_control_step_limit(layer)]
        if own.get("ignore_done") is False:  # a robosuite env: done after `horizon` steps unless told to ignore it
            limits.append(own.get("horizon"))
        layer = own.get("env", own.get("_env"))  # gymnasium's wrappers keep `env`, shimmy's and dm_control's `_env`
    found = [int(v) for v in limits if isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0]
    return min(found) if found else None


def dm_control_step_limit(layer) -> int | None:
    """Steps per episode of a dm_control environment (``rl.control.Environment``'s ``_step_limit``; a composer
    environment's ``_time_limit`` seconds over its ``control_timestep()``), None for any other object or no limit."""
    own = vars(layer)
    steps = own.get("_step_limit")
    if steps is None and isinstance(own.get("_time_limit"), (int, float)) and callable(getattr(layer, "control_timestep", None)):
        steps = own["_time_limit"] / layer.control_timestep()
    if isinstance(steps, (int, float, np.floating)) and not isinstance(steps, bool) and math.isfinite(steps) and steps > 0:
        return int(round(steps))
    return None


def describe_env(env) -> dict[str, Any]:
    """A JSON-friendly description of an env for store attrs (spaces, and the env's own describe())."""
    def space(s) -> Any:
        if hasattr(s, "spaces") and isinstance(s.spaces, Mapping):
            return {k: space(v) for k, v in s.spaces.items()}
        return {"shape": list(getattr(s, "shape", ()) or ()), "dtype": str(getattr(s, "dtype", ""))}

    out = {"class": f"{type(env.unwrapped).__module__}.{type(env.unwrapped).__qualname__}",
           "observation_space": space(env.observation_space), "action_space": space(env.action_space)}
    if getattr(env, "spec", None) is not None:
        out["gym_id"] = env.spec.id
    describe = getattr(env.unwrapped, "describe", None)
    if callable(describe):
        out.update(describe())
    return out
