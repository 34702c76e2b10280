"""Score registry: every score class in a module of ``fiper.scores`` registers itself by its ``name``.

Adding a score is one file in ``fiper/scores/`` (a ``ScoreBase`` subclass with a unique ``name``);
its constructor's arguments and defaults are its config (``fiper.monitor.spec.ScoreSpec``), which
the launchers offer as the hydra group ``score``. A score defined elsewhere joins with ``register_score``
in its own process, or by its import path ``'<module>:<Class>'`` anywhere a score is named (configs,
monitor files, ``monitor.json``): the module is imported and the class registered on first use.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from fiper.scores.base import FailureScore, ScoreBase

_REQUIRED = ("name", "needs", "fit", "reset", "step", "step_checked", "score_offline", "state", "from_state", "to")


def register_score(cls: type) -> type:
    """Register a score class under ``cls.name`` (usable as a decorator); names must be unique.

    Registering a class of the same module and name again (a reloaded module) replaces it."""
    missing = [a for a in _REQUIRED if not hasattr(cls, a)]
    if missing:
        raise TypeError(f"{cls.__name__} is not a FailureScore: it lacks {missing}")
    known = SCORES.get(cls.name)
    if known is not None and known is not cls:
        if known in _BUILTIN or score_path(known) != score_path(cls):
            raise ValueError(f"score name {cls.name!r} of {score_path(cls)} is taken by {score_path(known)}; "
                             f"give {cls.__name__} another name (its class attribute 'name')")
    SCORES[cls.name] = cls
    return cls


def score_path(cls: type) -> str:
    """``'<module>:<Class>'``, the import path ``score_class`` resolves in any process."""
    return f"{cls.__module__}:{cls.__qualname__}"


def score_id(cls: type) -> str:
    """How configs and saved monitors name a score class: fiper's own by registry name, any other
    by its import path, so a new process finds it without importing it first (a class of a script run as
    ``__main__`` has no such path: by its registry name, which that script registers)."""
    return cls.name if cls in _BUILTIN or cls.__module__ == "__main__" else score_path(cls)


def _import_score(path: str) -> type:
    """The class at ``'<module>:<Class>'``, imported and registered."""
    module_name, _, attr = path.partition(":")
    try:
        obj = importlib.import_module(module_name)
    except ImportError as err:
        raise KeyError(f"score {path!r}: module {module_name!r} does not import ({err}); put its directory on "
                       "PYTHONPATH (or install it)") from None
    for part in attr.split("."):
        obj = getattr(obj, part, None)
    if not inspect.isclass(obj):
        raise KeyError(f"score {path!r}: module {module_name!r} has no class {attr!r}")
    return register_score(obj)


def _discover() -> None:
    """Import every module of this package and register the concrete ScoreBase subclasses it defines."""
    package = importlib.import_module("fiper.scores")
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"fiper.scores.{info.name}")
        for obj in vars(module).values():
            if (inspect.isclass(obj) and issubclass(obj, ScoreBase) and obj.__module__ == module.__name__
                    and not inspect.isabstract(obj)):
                register_score(obj)


SCORES: dict[str, type[FailureScore]] = {}
_BUILTIN: set[type] = set()
_discover()
_BUILTIN.update(SCORES.values())


def score_class(name: str) -> type[FailureScore]:
    """The class registered under ``name``, or at the import path ``'<module>:<Class>'``; a KeyError
    lists the known names."""
    if name in SCORES:
        return SCORES[name]
    if isinstance(name, str) and ":" in name:
        registered = [cls for cls in SCORES.values() if score_path(cls) == name]
        return registered[0] if registered else _import_score(name)
    raise KeyError(f"unknown score {name!r}; known scores: {', '.join(sorted(SCORES))}; a score of your own: its "
                   "import path '<module>:<Class>' (docs/scores.md, \"Adding a score\")")


def make_score(name: str, **kwargs: Any) -> FailureScore:
    """An unfitted score by registry name with its hyper-parameters, e.g. make_score('ace', kappa=0.03)."""
    return score_class(name)(**kwargs)


def score_from_state(tensors: Mapping[str, Tensor], config: Mapping[str, Any], *, device: str | torch.device = "cpu") -> FailureScore:
    """Restore a fitted score from ``score.state()`` output; the class is looked up by config['name'],
    else by its import path config['class'] (``save_monitor`` records it for scores defined outside fiper)."""
    return score_class(score_from_state_name(config)).from_state(tensors, config, device=device)


def score_from_state_name(config: Mapping[str, Any]) -> str:
    """The registry name or import path a saved score's config is restored by (config['name'], else config['class'])."""
    if "name" not in config:
        raise ValueError(f"score config has no 'name' (keys: {sorted(config)}); save it with score.state()")
    return config["name"] if config["name"] in SCORES or "class" not in config else config["class"]
