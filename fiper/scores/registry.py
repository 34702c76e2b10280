"""Score registry: every score class in a module of ``fiper.scores`` registers itself by its ``name``.

Adding a score is one file in ``fiper/scores/`` (a ``ScoreBase`` subclass with a unique ``name``);
its constructor's arguments and defaults are its config (``fiper.monitor.spec.ScoreSpec``), which
the launchers offer as the hydra group ``score``. A score defined elsewhere joins with ``register_score``.
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
    """Register a score class under ``cls.name`` (usable as a decorator); names must be unique."""
    missing = [a for a in _REQUIRED if not hasattr(cls, a)]
    if missing:
        raise TypeError(f"{cls.__name__} is not a FailureScore: it lacks {missing}")
    known = SCORES.get(cls.name)
    if known is not None and known is not cls:
        raise ValueError(f"score name {cls.name!r} is taken by {known.__module__}.{known.__name__}")
    SCORES[cls.name] = cls
    return cls


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
_discover()


def score_class(name: str) -> type[FailureScore]:
    """The class registered under ``name``; a KeyError lists the known names."""
    try:
        return SCORES[name]
    except KeyError:
        raise KeyError(f"unknown score {name!r}; known scores: {', '.join(sorted(SCORES))}") from None


def make_score(name: str, **kwargs: Any) -> FailureScore:
    """An unfitted score by registry name with its hyper-parameters, e.g. make_score('ace', kappa=0.03)."""
    return score_class(name)(**kwargs)


def score_from_state(tensors: Mapping[str, Tensor], config: Mapping[str, Any], *, device: str | torch.device = "cpu") -> FailureScore:
    """Restore a fitted score from ``score.state()`` output; the class is looked up by config['name']."""
    if "name" not in config:
        raise ValueError(f"score config has no 'name' (keys: {sorted(config)}); save it with score.state()")
    return score_class(config["name"]).from_state(tensors, config, device=device)
