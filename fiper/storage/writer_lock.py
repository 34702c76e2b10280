"""One writer per store: an exclusive lock on ``<store>/.writer.lock`` held while a store is open for appending.

Two processes appending to one store would each write rows after the end they last read, so one
overwrites the other's episodes and both report success. The lock is an advisory ``flock``: the
kernel releases it when its holder exits or is killed, so a stale lock never blocks a resumed sweep.
Stores of one process share its lock (counted), so a process may open its own store twice.
"""

from __future__ import annotations

import os
import socket
import weakref
from pathlib import Path
from typing import IO

try:
    import fcntl
except ImportError:  # no flock on this platform: stores are not locked
    fcntl = None

from fiper.storage.errors import StoreError

LOCK_FILE = ".writer.lock"
_held: dict[str, list] = {}  # resolved store path -> [lock file, number of open stores of this process holding it]


class StoreBusyError(StoreError):
    """Another process holds the store's writer lock."""


def busy_message(path: Path, holder: str) -> str:
    """What to do when ``path`` is being written by ``holder``."""
    return (f"{path} is being written by another process ({holder}): a store takes one writer at a time. Give every job "
            "of a sweep its own store, e.g. 'out=runs/sweep/stress_${seeds.start}.zarr', and merge them afterwards "
            "(python -m launch.merge_stores, docs/sweeps.md); or wait until that process ends and rerun to resume")


def hold_writer_lock(path: Path) -> str | None:
    """Take the writer lock of the store folder ``path`` and return its key for ``release_writer_lock``; raise
    StoreBusyError naming the holder when another process has it. None where nothing can be locked."""
    key = str(Path(path).resolve())
    if key in _held:
        _held[key][1] += 1
        return key
    if fcntl is None:
        return None
    try:
        handle: IO[str] = open(Path(path) / LOCK_FILE, "a+")
    except OSError:  # a read-only store: no process can append to it
        return None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "holder unknown"
        handle.close()
        raise StoreBusyError(busy_message(Path(path), holder)) from None
    except OSError:  # a filesystem without flock (some network mounts): the store is written unlocked, as before
        handle.close()
        return None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}")
    handle.flush()
    _held[key] = [handle, 1]
    return key


def release_writer_lock(key: str | None) -> None:
    """Give back one hold of ``key``; the lock is released when the process's last store holding it lets go."""
    entry = _held.get(key) if key is not None else None
    if entry is None:
        return
    entry[1] -= 1
    if entry[1] <= 0:
        del _held[key]
        entry[0].close()


def held_while(owner, key: str | None):
    """``owner``, holding ``key`` once more until it is garbage collected."""
    if key is not None:
        _held[key][1] += 1
        weakref.finalize(owner, release_writer_lock, key)
    return owner


def writer_of(path: Path) -> str | None:
    """The process writing the store folder ``path`` now ('pid 4711 on node3'), or None when no other process is."""
    lock = Path(path) / LOCK_FILE
    if fcntl is None or not lock.is_file() or str(Path(path).resolve()) in _held:
        return None
    try:
        with open(lock) as handle:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)  # taken only while no writer holds it; never writes
    except BlockingIOError:
        return lock.read_text().strip() or "holder unknown"
    except OSError:
        return None
    return None
