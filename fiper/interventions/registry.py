"""A name -> factory registry, shared by fallbacks and reward programs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Registry(dict):
    """Factories by name; ``make(name, **kw)`` builds one, unknown names list the known ones."""

    def __init__(self, kind: str, entries: dict[str, Callable[..., Any]]):
        super().__init__(entries)
        self.kind = kind

    def register(self, name: str, factory: Callable[..., Any], *, overwrite: bool = False) -> None:
        if name in self and not overwrite:
            raise ValueError(f"a {self.kind} named {name!r} is already registered; pass overwrite=True to replace it")
        self[name] = factory

    def make(self, name: str, **kwargs: Any) -> Any:
        if name not in self:
            raise KeyError(f"unknown {self.kind} {name!r}; known {self.kind}s: {sorted(self)}")
        return self[name](**kwargs)
