"""A store's zarr array whose failed reads name the store, array, chunk file and episodes.

Reads that cover whole episodes along time (slices, row-index arrays, the whole column) are also
compared with the checksums recorded when those episodes were written (fiper.storage.integrity).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import zarr

if TYPE_CHECKING:
    from fiper.storage.store import EpisodeStore


def selected_rows(selection: Any, shape: tuple[int, ...]) -> tuple[int, int] | np.ndarray | None:
    """Rows along time a selection reads when it takes whole rows: (start, stop), a row array, or None."""
    sel = selection if isinstance(selection, tuple) else (selection,)
    rest = [s for s in sel[1:] if s is not Ellipsis]
    if not shape or any(not (isinstance(s, slice) and s == slice(None)) for s in rest):
        return None
    first = sel[0] if sel else slice(None)
    if first is Ellipsis:
        first = slice(None)
    if isinstance(first, slice):
        start, stop, step = first.indices(shape[0])
        return (start, max(start, stop)) if step == 1 else None
    if isinstance(first, (list, np.ndarray)):
        rows = np.asarray(first)
        if rows.ndim == 1 and rows.dtype.kind in "iu":
            return np.where(rows < 0, rows + shape[0], rows).astype(np.int64)
    return None


class CheckedArray:
    """Wraps a zarr array of an EpisodeStore; everything but reading is delegated unchanged."""

    def __init__(self, array: zarr.Array, store: EpisodeStore, name: str):
        self._array, self._store, self.name = array, store, name

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__") or attr in ("_array", "_store"):  # not set yet (copy, pickle)
            raise AttributeError(attr)
        return getattr(self._array, attr)

    def __len__(self) -> int:
        return int(self._array.shape[0])

    def __repr__(self) -> str:
        return f"CheckedArray({self._store.path}/{self.name}, shape={self._array.shape}, dtype={self._array.dtype})"

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[...]
        return out if dtype is None else out.astype(dtype)

    def __getitem__(self, selection: Any) -> np.ndarray:
        return self._read(selection, lambda: self._array[selection])

    def get_orthogonal_selection(self, selection: Any) -> np.ndarray:
        return self._read(selection, lambda: self._array.get_orthogonal_selection(selection))

    @property
    def oindex(self) -> _Indexer:
        return _Indexer(self, self._array.oindex)

    @property
    def vindex(self) -> _Indexer:
        return _Indexer(self, self._array.vindex, verify=False)

    def _read(self, selection: Any, read: Any, verify: bool = True) -> np.ndarray:
        rows = selected_rows(selection, tuple(self._array.shape))
        try:
            values = read()
        except IndexError:
            raise
        except Exception as err:  # codecs raise RuntimeError, ValueError, TypeError, ... for damaged bytes
            raise self._store._read_damage(self.name, self._array, rows, err) from err
        if verify and rows is not None:
            self._store._verify_rows(self.name, rows, values)
        return values


class _Indexer:
    def __init__(self, owner: CheckedArray, indexer: Any, verify: bool = True):
        self._owner, self._indexer, self._verify = owner, indexer, verify

    def __getitem__(self, selection: Any) -> np.ndarray:
        return self._owner._read(selection, lambda: self._indexer[selection], self._verify)
