"""Resolve a user object from a string: ``"path/to/file.py:name"`` or ``"package.module:name"``.

This is how a user's (or a vision-language model's) reward program or safe controller plugs in
without editing fiper: the named file is imported as a module and the attribute returned.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any


def _split(spec: str) -> tuple[str, str]:
    if not isinstance(spec, str) or spec.count(":") < 1:
        raise ValueError(
            f"cannot load {spec!r}: write 'path/to/file.py:function' or 'package.module:function'"
        )
    source, _, attr = spec.rpartition(":")
    if not source or not attr.isidentifier():
        raise ValueError(
            f"cannot load {spec!r}: '{attr}' is not a Python name; write 'path/to/file.py:function' "
            "or 'package.module:function'"
        )
    return source, attr


def names_a_file(source: str) -> bool:
    """Whether the part of a 'source:name' spec before the colon is a file path (imported by its path), not a module."""
    return source.endswith(".py") or "/" in source or "\\" in source


def import_file(path: Path) -> Any:
    """The Python file at ``path`` imported as a module of its own (named by its resolved path, so two files of one
    name do not collide)."""
    if not path.is_file():
        raise FileNotFoundError(f"cannot load a program from {str(path)!r}: no such file")
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    name = f"fiper_user_{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {str(path)!r} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception:
        sys.modules.pop(name, None)
        raise
    return module


def load_object(spec: str) -> Any:
    """The object named by ``spec``: a ``.py`` file path or a dotted module, then ':' and a name."""
    source, attr = _split(spec)
    if names_a_file(source):
        module = import_file(Path(source).expanduser())
    else:
        try:
            module = importlib.import_module(source)
        except ModuleNotFoundError as exc:
            raise ModuleNotFoundError(
                f"cannot load {spec!r}: module {source!r} is not importable ({exc}); give a file path ending "
                "in .py or install the package"
            ) from exc
    if not hasattr(module, attr):
        public = sorted(n for n in vars(module) if not n.startswith("_"))
        raise AttributeError(f"cannot load {spec!r}: {source!r} has no attribute {attr!r}; it defines {public}")
    return getattr(module, attr)


def check_call(fn: Any, args: tuple, kwargs: dict, what: str, takes: str = "") -> None:
    """A ValueError naming ``what``, its signature and what it must take when ``fn`` cannot be called with these arguments."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin without a signature: its call will say
        return
    try:
        signature.bind(*args, **kwargs)
    except TypeError as err:
        given = ", ".join([*("<value>" for _ in args), *kwargs]) or "no arguments"
        must = f"; it must take {takes}" if takes else ""
        raise ValueError(f"{what} cannot be called with ({given}): {err}; its signature is {signature}{must}") from None
