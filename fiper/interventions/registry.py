"""A name -> factory registry, shared by fallbacks, reward programs and responses.

A name of one's own is an import path, ``'path/to/file.py:name'`` or ``'package.module:name'``: the object is
loaded (``load_object``) and built with the settings as a registered factory would be, so a part written
outside fiper joins from a config or the command line without registering it first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fiper.interventions.loading import check_call, load_object


class UnknownName(KeyError, ValueError):
    """A name neither registered nor an import path (a ValueError too: commands print it without a traceback)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class Registry(dict):
    """Factories by name; ``make(name, **kw)`` builds one, unknown names list the known ones.

    ``build(obj, path, **kw)`` turns the object an import path names into the part (default: ``obj(**kw)``)."""

    def __init__(self, kind: str, entries: dict[str, Callable[..., Any]], *,
                 build: Callable[..., Any] | None = None):
        super().__init__(entries)
        self.kind = kind
        self.build = build

    def register(self, name: str, factory: Callable[..., Any], *, overwrite: bool = False) -> None:
        if name in self and not overwrite:
            raise ValueError(f"a {self.kind} named {name!r} is already registered; pass overwrite=True to replace it")
        self[name] = factory

    def make(self, name: str, **kwargs: Any) -> Any:
        if isinstance(name, str) and name in self:
            check_call(self[name], (), kwargs, f"{self.kind} {name!r}")
            return self[name](**kwargs)
        if not isinstance(name, str) or ":" not in name:
            raise UnknownName(f"unknown {self.kind} {name!r}; known {self.kind}s: {sorted(self)}; one of your own: its "
                              f"import path 'path/to/file.py:name' or 'package.module:name' (built with the other "
                              f"settings), or register_{self.kind}({name!r}, factory) in the same process")
        try:
            obj = load_object(name)
        except Exception as err:  # a missing file, an unimportable module, a file that raises, a missing name
            raise ValueError(f"{self.kind} {name!r} cannot be loaded: {type(err).__name__}: {err}") from err
        if self.build is not None:
            return self.build(obj, name, **kwargs)
        if not callable(obj):
            raise ValueError(f"{self.kind} {name!r} is a {type(obj).__name__}: name a class or function that builds "
                             f"the {self.kind} from its settings")
        check_call(obj, (), kwargs, f"{self.kind} {name!r}")
        return obj(**kwargs)
