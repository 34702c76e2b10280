"""Counting host reads of tensors: the calls that make the host wait for a device.

``count_host_reads()`` wraps the tensor methods that bring values to the host (``item``,
``__bool__``, ``__float__``, ``__int__``, ``__index__``, ``tolist``, ``cpu``, ``numpy``) and records
each call made from the project's code as ``(method, function)``. On a GPU each is a host
synchronisation; on a CPU nothing waits, but the same calls run, so the count holds the code to the
GPU's budget on any machine. Calls from torch's own Python code are not counted (the call that
reached it was).
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import NamedTuple

import torch

READS = ("item", "__bool__", "__float__", "__int__", "__index__", "tolist", "cpu", "numpy")
ROOT = Path(__file__).resolve().parents[2]


class HostRead(NamedTuple):
    method: str
    file: str  # relative to the repository root
    function: str


@contextmanager
def count_host_reads() -> Iterator[list[HostRead]]:
    """Within the block, every host read by project code is appended to the yielded list."""
    calls: list[HostRead] = []
    originals = {name: getattr(torch.Tensor, name) for name in READS}

    def wrap(name, original):
        def counted(self, *args, **kwargs):
            code = sys._getframe(1).f_code
            path = Path(code.co_filename).resolve()
            if ROOT in path.parents and ".venv" not in path.parts:
                calls.append(HostRead(name, path.relative_to(ROOT).as_posix(), code.co_name))
            return original(self, *args, **kwargs)
        return counted

    for name, original in originals.items():
        setattr(torch.Tensor, name, wrap(name, original))
    try:
        yield calls
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)


@contextmanager
def marks_at_each_step(policy, count, method: str = "_denoise") -> Iterator[list[int]]:
    """Yields a list that receives ``count()`` at every call of ``policy``'s denoiser ``method`` (one per sampling step)."""
    marks: list[int] = []
    original = getattr(policy, method)

    def marked(*args, **kwargs):
        marks.append(count())
        return original(*args, **kwargs)

    setattr(policy, method, marked)
    try:
        yield marks
    finally:
        delattr(policy, method)  # back to the class's method


def reads_at_each_step(policy, calls: list[HostRead], method: str = "_denoise"):
    """Yields a list that receives len(calls) at every denoiser call of ``policy`` (one per sampling step)."""
    return marks_at_each_step(policy, lambda: len(calls), method)


def cuda_syncs(fn, policy=None, method: str = "_denoise") -> tuple[int, list[int]]:
    """Synchronisations reported by torch.cuda's sync debug mode while ``fn`` runs, and the count
    at each denoiser call of ``policy`` (one per sampling step)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        count = lambda: sum("synchroniz" in str(w.message) for w in caught)  # noqa: E731
        with marks_at_each_step(policy, count, method) if policy is not None else nullcontext([]) as marks:
            torch.cuda.set_sync_debug_mode("warn")
            try:
                fn()
            finally:
                torch.cuda.set_sync_debug_mode("default")
    return count(), marks
