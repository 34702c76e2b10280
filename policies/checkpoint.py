"""Policy checkpoint files: ``config.json`` (what to build) + ``model.safetensors`` (weights, EMA, normalizer).

No pickled objects: the json names the policy kind, its PolicyConfig and the data shapes, and the
safetensors file holds every tensor of the policy's state dict.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from fiper.atomic import commit_files

FORMAT = "fiper-policy/1"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TRAIN_HINT = "python -m launch.train data=<demo store> policy=diffusion_unet out={dir}"


def policy_file_writers(meta: Mapping[str, Any], state: Mapping[str, torch.Tensor]) -> dict[str, Callable[[Path], None]]:
    """The writers of a checkpoint's two files for fiper.atomic.commit_files, weights first, config.json last."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    return {WEIGHTS_FILE: lambda path: save_file(tensors, str(path)),
            CONFIG_FILE: lambda path: path.write_text(json.dumps({"format": FORMAT, **meta}, indent=2))}


def write_policy_files(directory: str | os.PathLike, meta: Mapping[str, Any], state: Mapping[str, torch.Tensor]) -> Path:
    """Write weights and config together, whole or not at all, into ``directory`` (created if needed)."""
    return commit_files(directory, policy_file_writers(meta, state))


def missing_checkpoint(directory: Path, what: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"no policy checkpoint at {directory} ({what}); train one with "
        f"`{TRAIN_HINT.format(dir=directory)}` or save a policy there with policy.save(dir)"
    )


def read_policy_files(directory: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The json metadata and the state dict of a saved policy; FileNotFoundError says how to make one."""
    directory = Path(directory)
    if not directory.is_dir():
        raise missing_checkpoint(directory, "directory does not exist")
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if not (directory / name).is_file():
            raise missing_checkpoint(directory, f"missing {directory / name}")
    meta = json.loads((directory / CONFIG_FILE).read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{directory / CONFIG_FILE} has format {meta.get('format')!r}, expected {FORMAT!r}: not a fiper policy checkpoint")
    return meta, load_file(str(directory / WEIGHTS_FILE), device=str(device))
