"""Codecs that other stacks' stores use beyond numcodecs' own, registered when a store needs them.

diffusion_policy compresses image arrays with imagecodecs' Jpeg2k (codec id ``imagecodecs_jpeg2k``).
numcodecs knows such ids only after ``imagecodecs.numcodecs.register_codecs()``; without the
package a read fails deep inside zarr, so a store is checked for them before it is opened.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from fiper.storage.errors import StoreError

IMAGECODECS_PREFIX = "imagecodecs_"
INSTALL_HINT = "pip install 'fiper[codecs]' (or pip install imagecodecs)"


def imagecodecs_arrays(path: Path) -> dict[str, str]:
    """Array path -> imagecodecs codec id, for every array of a format-2 store compressed or
    filtered by one. Walks group folders only, so chunk files are never listed."""
    found: dict[str, str] = {}
    for entry in sorted(os.scandir(path), key=lambda e: e.name):
        if not entry.is_dir():
            continue
        folder = Path(entry.path)
        if (folder / ".zarray").is_file():
            try:
                spec = json.loads((folder / ".zarray").read_text())
            except (OSError, ValueError):
                continue  # damaged metadata is reported by the store's own checks
            for codec in [spec.get("compressor")] + list(spec.get("filters") or []):
                if isinstance(codec, dict) and str(codec.get("id", "")).startswith(IMAGECODECS_PREFIX):
                    found[entry.name] = codec["id"]
        elif (folder / ".zgroup").is_file():
            found.update({f"{entry.name}/{k}": v for k, v in imagecodecs_arrays(folder).items()})
    return found


def register_needed_codecs(path: str | Path) -> list[str]:
    """Register imagecodecs' numcodecs codecs when the store at ``path`` uses one; the ids it needed.

    Raises StoreError naming the arrays and the package to install when imagecodecs is missing.
    """
    path = Path(path)
    needed = imagecodecs_arrays(path)
    if not needed:
        return []
    try:
        from imagecodecs.numcodecs import register_codecs
    except ImportError as err:
        listed = ", ".join(f"{a} ({c})" for a, c in sorted(needed.items()))
        raise StoreError(f"{path} compresses {listed} with imagecodecs (diffusion_policy's image codec), which is not "
                         f"installed; {INSTALL_HINT}") from err
    register_codecs(verbose=False)
    return sorted(set(needed.values()))
