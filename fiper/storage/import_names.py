"""The store keys an imported dataset's fields are written under: the user's ``keys`` mapping, else a default name."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping


def store_names(fields: Iterable[str], keys: Mapping[str, str], default: Callable[[str], str], error: type[Exception], *,
                what: str = "feature", taken: Iterable[str] = ()) -> dict[str, str]:
    """``{field: store key}``; a ``keys`` entry naming no field, or two fields (or a field and a ``taken`` key such as
    'action') under one key, is refused naming them and the fix."""
    fields = list(fields)
    unknown = sorted(set(keys) - set(fields))
    if unknown:
        raise error(f"keys names {unknown}, which the dataset has no {what} of (it has {sorted(fields)})")
    names = {f: str(keys[f]) if f in keys else default(f) for f in fields}
    counts = Counter([*names.values(), *taken])
    clash = sorted(n for n, count in counts.items() if count > 1)
    if clash:
        holders = sorted(f for f, n in names.items() if n in clash)
        raise error(f"{what}s {holders} would all be stored as {clash}"
                    + (f" (beside the dataset's {sorted(set(taken) & set(clash))})" if set(taken) & set(clash) else "")
                    + f"; give them distinct names with keys={{{what}: key}}")
    return names
