"""Which array names a store can hold as given: zarr reads '/' as a path separator, so a name is its path."""

from __future__ import annotations

from collections.abc import Iterable


def unstorable_name(names: Iterable[str]) -> tuple[str, str] | None:
    """The first of ``names`` that a store would write under another name or refuses, with why; None when all fit.

    '/' nests (``robot/arm`` is the array ``arm`` in the group ``robot``, read back as ``robot/arm``), so an empty
    segment (a leading, trailing or doubled '/') would be read back as another name, '.' and '..' segments are refused,
    and a name below another name (``cam`` and ``cam/depth``) cannot be both an array and a group."""
    names = [str(n) for n in names]
    for name in names:
        segments = name.split("/")
        if "" in segments:
            return name, ("is empty" if name == "" else
                          "has an empty path segment (a leading, trailing or doubled '/'), so it would be read back as another name")
        if any(s in (".", "..") for s in segments):
            return name, "has a '.' or '..' path segment, which zarr refuses"
    given = set(names)
    for name in names:
        segments = name.split("/")
        for end in range(1, len(segments)):
            parent = "/".join(segments[:end])
            if parent in given:
                return name, f"lies below the name {parent!r} ('/' nests names in the store, and {parent!r} is an array of its own)"
    return None
