"""Errors raised by rollout / demonstration storage."""

from __future__ import annotations

from collections.abc import Sequence


class StoreError(ValueError):
    """A store is missing, foreign, truncated, or was given data that does not fit it."""


def repair_command(path: object) -> str:
    return f"python -m launch.repair_store store={path}"


class DamagedStoreError(StoreError):
    """Bytes of a store are lost or corrupt: a chunk that does not decode, a missing or truncated
    file, metadata that does not parse, or data whose per-episode checksum does not match.

    ``array`` names the array ('decisions/samples'), ``files`` the files involved and ``episodes``
    the committed episodes affected, where known. The message ends with the fix.
    """

    def __init__(self, path: object, problem: str, *, array: str | None = None, files: Sequence[str] = (),
                 episodes: Sequence[int] = (), fix: str | None = None):
        self.path, self.array, self.files, self.episodes = str(path), array, tuple(files), tuple(int(e) for e in episodes)
        where = f" in {array}" if array else ""
        files_note = f" (file{'s' if len(self.files) > 1 else ''} {', '.join(self.files[:4])}{' ...' if len(self.files) > 4 else ''})" if self.files else ""
        eps = f"episode{'s' if len(self.episodes) > 1 else ''} {_ranges(self.episodes)} of " if self.episodes else ""
        fix = fix or (f"run `{repair_command(path)}` to keep every readable episode (the damaged store is kept as a backup), "
                      "or restore the store from a copy")
        super().__init__(f"{eps}{path} is damaged{where}{files_note}: {problem}. Fix: {fix}")


def _ranges(values: Sequence[int]) -> str:
    """[0, 1, 2, 5] -> '0-2, 5'."""
    out, vals = [], sorted(set(values))
    i = 0
    while i < len(vals):
        j = i
        while j + 1 < len(vals) and vals[j + 1] == vals[j] + 1:
            j += 1
        out.append(str(vals[i]) if i == j else f"{vals[i]}-{vals[j]}")
        i = j + 1
    return ", ".join(out)
