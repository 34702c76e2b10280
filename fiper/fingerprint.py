"""Fingerprints of what produced an output: a stable digest of the resolved settings and input files.

A cached pipeline stage or an appended rollout store is reused only when the fingerprint of the
run at hand equals the one recorded with it; otherwise the keys that differ are named. The digest
is sha256 over canonical JSON (sorted keys, no whitespace) of the flattened settings, in which
files enter as their own sha256 (``directory_digest``), so it does not depend on dict order,
paths' working directory or the Python version.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

FORMAT = "fiper-fingerprint/1"
SOFTWARE = ("fiper", "mujoco", "torch", "numpy", "gymnasium")  # what a recorded episode's numbers depend on
WEIGHT_SUFFIXES = (".safetensors", ".json")  # a policy's or monitor's weights and config
SOURCE_SUFFIXES = (".py", ".xml")  # code, and the MJCF models the envs load


class FingerprintMismatch(ValueError):
    """An output was produced by different settings or inputs than the run that wants to reuse it."""


def canonical(value: Any) -> str:
    """Canonical JSON: sorted keys, tuples as lists, no whitespace."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def file_digest(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def directory_digest(path: str | os.PathLike | None, suffixes: Iterable[str] = WEIGHT_SUFFIXES) -> str | None:
    """sha256 over the names and contents of the files in ``path`` ending in ``suffixes`` (None for None).

    Hidden files and subfolders are left out, so logs and run folders beside the weights do not count.
    """
    if path is None:
        return None
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not a directory: cannot fingerprint its weights")
    files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".") and p.name.endswith(tuple(suffixes)))
    return sha256_text(canonical({p.name: file_digest(p) for p in files}))


def source_digests(sources: Iterable[str]) -> dict[str, str]:
    """{'fiper/storage/store.py': sha256, ...} of the source files under each of ``sources`` (a package, a
    subpackage folder or a module file, written as a path from its top-level package: 'envs',
    'fiper/storage', 'launch/train.py'), found where Python imports them from, so an installed copy counts too."""
    out: dict[str, str] = {}
    for source in sources:
        top, _, rest = str(source).partition("/")
        spec = importlib.util.find_spec(top)
        if spec is None or not spec.submodule_search_locations:
            raise ModuleNotFoundError(f"cannot fingerprint the source of {source!r}: no importable package {top!r}")
        base = Path(next(iter(spec.submodule_search_locations)))
        path = base / rest if rest else base
        if not path.exists():
            raise FileNotFoundError(f"cannot fingerprint the source of {source!r}: {path} does not exist")
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in SOURCE_SUFFIXES
                                                     and "__pycache__" not in p.parts)
        for f in files:
            out[f"{top}/{f.relative_to(base).as_posix()}"] = file_digest(f)
    return out


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one level of dotted keys; lists and scalars are leaves."""
    if isinstance(value, Mapping) and value:
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    leaf = json.loads(canonical(value))  # tuples -> lists, numpy scalars -> str: what is stored is what is compared
    return {prefix[:-1] if prefix else "": leaf}


def make_fingerprint(settings: Mapping[str, Any]) -> dict[str, Any]:
    """{'format', 'digest', 'values'}: the flattened settings and their digest (JSON-safe, for attrs and files)."""
    values = flatten(settings)
    return {"format": FORMAT, "digest": sha256_text(canonical(values)), "values": values}


_ABSENT = object()


def _short(value: Any) -> str:
    if value is _ABSENT:
        return "(absent)"
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return f"sha256:{value[:12]}"
    text = canonical(value)
    return text if len(text) <= 60 else text[:57] + "..."


def differences(recorded: Mapping[str, Any] | None, current: Mapping[str, Any]) -> list[str]:
    """'key: old -> new' for every flattened key whose value differs (an empty list when equal)."""
    old = dict((recorded or {}).get("values", {}))
    new = dict(current.get("values", {}))
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, _ABSENT), new.get(key, _ABSENT)
        if a is _ABSENT or b is _ABSENT or canonical(a) != canonical(b):
            out.append(f"{key}: {_short(a)} -> {_short(b)}")
    return out


def same(recorded: Mapping[str, Any] | None, current: Mapping[str, Any]) -> bool:
    return bool(recorded) and recorded.get("digest") == current["digest"]


def software_versions(packages: Iterable[str] = SOFTWARE) -> dict[str, str]:
    """Installed versions of ``packages`` (those installed), recorded with every store: a simulator release can change
    contacts, and so the episodes, for the same seed and actions."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in packages:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out
