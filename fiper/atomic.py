"""Files written whole or not at all: a process killed while writing leaves the old file or the new one.

One file: written to a hidden sibling, flushed to disk, renamed over the target (``replacing``,
``write_atomic``). Several files that must change together (a training checkpoint): each is staged
so, then a commit record names them, then each is renamed into place; ``finish_commit`` completes the
renames of a recorded commit a killed process left, or drops the staged files of one it had not recorded.
A directory (a store an importer writes): built in a hidden sibling of its own, renamed into place once
complete (``replacing_directory``); a failed or interrupted build removes the sibling, and a killed one
leaves only the hidden ``.<name>.partial-<id>`` folder, which no ``*.<suffix>`` glob matches.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

COMMIT_RECORD = ".commit.json"


def staged_path(path: str | os.PathLike) -> Path:
    """The hidden sibling new contents of ``path`` are written to (same suffix, for writers that choose the format by it)."""
    path = Path(path)
    return path.with_name(f".{path.stem}.tmp{path.suffix}")


def _sync(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # a directory cannot be opened on some systems: its entry is flushed with the file system
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _replace(tmp: Path, path: Path) -> None:
    os.replace(tmp, path)
    _sync(path.parent)  # the rename itself survives a power loss


@contextmanager
def replacing(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path to write ``path``'s new contents to; flushed and renamed over ``path`` when the block ends,
    removed when it raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = staged_path(path)
    try:
        yield tmp
        _sync(tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _replace(tmp, path)


def _sync_tree(root: Path) -> None:
    for folder, _, files in os.walk(root):
        for name in files:
            _sync(Path(folder) / name)
        _sync(Path(folder))


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


@contextmanager
def replacing_directory(path: str | os.PathLike, *, replace: bool = False) -> Iterator[Path]:
    """A new hidden sibling directory path to build ``path`` in; flushed and renamed to ``path`` when the block ends,
    removed when it raises (Ctrl-C included), so ``path`` is the old directory or the whole new one. An existing
    ``path`` is replaced only with ``replace`` (else FileExistsError, the build removed): it is set aside under a hidden
    name, the new one renamed in, and only then is the old one removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        _sync_tree(tmp)
        if (path.exists() or path.is_symlink()) and not replace:
            raise FileExistsError(f"{path} already exists")
    except BaseException:
        _remove(tmp)
        raise
    old = path.with_name(f".{path.name}.replaced-{uuid.uuid4().hex[:8]}") if path.exists() or path.is_symlink() else None
    try:
        if old is not None:
            os.replace(path, old)
        os.replace(tmp, path)
    except BaseException:
        if old is not None and not path.exists():
            os.replace(old, path)  # the old one back in place
        _remove(tmp)
        raise
    _sync(path.parent)
    if old is not None:
        _remove(old)


def write_atomic(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write ``data`` (text or bytes) to ``path`` whole or not at all."""
    with replacing(path) as tmp:
        tmp.write_bytes(data) if isinstance(data, bytes) else tmp.write_text(data)
    return Path(path)


def commit_files(directory: str | os.PathLike, writers: Mapping[str, Callable[[Path], object]]) -> Path:
    """Replace the files ``writers`` names in ``directory`` together, each written by its writer (given the path to
    write); they are renamed into place in the mapping's order, so the last one is the last to change."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    finish_commit(directory)
    for name, write in writers.items():
        staged = staged_path(directory / name)
        write(staged)
        _sync(staged)
    write_atomic(directory / COMMIT_RECORD, json.dumps(list(writers)))
    finish_commit(directory)
    return directory


def finish_commit(directory: str | os.PathLike) -> None:
    """Complete a commit of ``commit_files`` that a killed process recorded, or remove the staged files of one it had
    not yet recorded (the files in place are then the previous commit's)."""
    directory = Path(directory)
    record = directory / COMMIT_RECORD
    if record.exists():
        for name in json.loads(record.read_text()):
            staged = staged_path(directory / name)
            if staged.exists():
                os.replace(staged, directory / name)
        _sync(directory)
        record.unlink()
    elif directory.is_dir():
        for staged in directory.glob(".*.tmp*"):
            if staged.is_file():
                staged.unlink()
