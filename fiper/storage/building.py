"""A new store written whole or not at all (the importers' and merge's output).

The store is built in a hidden sibling of ``out`` (fiper.atomic.replacing_directory) and renamed to ``out``
once every episode is in it; a check that fails on the way, an error reading the source, or Ctrl-C removes
the sibling, so ``out`` is what it was before: absent, or the store ``overwrite`` was to replace, unchanged.
A process killed outright leaves only the hidden ``.<out>.partial-<id>`` folder, which no ``*.zarr`` glob
and no directory of stores lists; it can be deleted.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from fiper.atomic import replacing_directory
from fiper.storage.errors import StoreError
from fiper.storage.layout import COMMIT_KEY
from fiper.storage.store import EpisodeStore
from fiper.storage.writer_lock import StoreBusyError, busy_message, writer_of


def check_out(out: str | os.PathLike, overwrite: bool, exists_fix: str = "pass overwrite=true to replace it, or give "
              "another out") -> None:
    """Refuse an ``out`` that exists (without ``overwrite``), that another process is writing, or that is no store
    (``overwrite`` replaces only a store: anything else there would be lost)."""
    out = Path(out)
    if not (out.exists() or out.is_symlink()):
        return
    if holder := writer_of(out):
        raise StoreBusyError(busy_message(out, holder))
    if not overwrite:
        raise StoreError(f"{out} already exists; {exists_fix}")
    is_store = out.is_dir() and ((out / ".zgroup").is_file() or (out / "meta" / COMMIT_KEY).is_dir())
    if not is_store and not (out.is_dir() and not any(out.iterdir())):
        raise StoreError(f"{out} exists and is not a fiper store, so overwrite=true would delete what it holds; give another "
                         "out, or move it away first")


def build_store(out: str | os.PathLike, fill: Callable[[EpisodeStore], Any], *, attrs: Mapping[str, Any] | None = None,
                overwrite: bool = False, exists_fix: str | None = None) -> EpisodeStore:
    """Create the store ``out`` with ``attrs``, its episodes appended by ``fill`` (given the new store), whole or not at
    all (see the module docstring); an existing store at ``out`` is replaced only with ``overwrite``, and only once the
    new one is complete. Returns ``out`` opened for reading."""
    out = Path(out)
    fix = {"exists_fix": exists_fix} if exists_fix else {}
    check_out(out, overwrite, **fix)
    with replacing_directory(out, replace=overwrite) as tmp:
        fill(EpisodeStore.create(tmp, attrs=attrs))  # the store is dropped on return: its writer lock with it
        check_out(out, overwrite, **fix)  # again: another process may have made or opened out meanwhile
    return EpisodeStore.open(out)
