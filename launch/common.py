"""Small helpers shared by the entry points: config saving, device choice, policy loading, cleanup."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf


def set_cpu_threads(threads: int | None) -> None:
    """Torch intra-op threads. One is fastest for fiper's small per-decision batches on a CPU and
    avoids oversubscription when several processes share the cores; null keeps torch's default."""
    if threads:
        torch.set_num_threads(int(threads))


def resolve_device(device: str) -> str:
    """'auto' picks CUDA when available."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def save_config(cfg: DictConfig, directory: str | Path, name: str) -> Path:
    """Write the run's full resolved config beside its outputs."""
    path = Path(directory) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(OmegaConf.to_yaml(cfg, resolve=True))
    return path


def plain(cfg: Any) -> Any:
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg


def maybe_load_policy(path: str | None, device: str):
    if path is None:
        return None
    from policies import load_policy

    return load_policy(path, device=resolve_device(device))


@contextmanager
def removed_on_failure(path: str | Path, keep: Callable[[Path], bool] = lambda p: False) -> Iterator[None]:
    """Remove ``path`` when the block created it and then failed, unless ``keep(path)`` (e.g. a checkpoint to resume)."""
    path = Path(path)
    existed = path.exists()
    try:
        yield
    except BaseException:
        if not existed and path.exists() and not keep(path):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        raise
