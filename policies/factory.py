"""Build a policy from its config, and load a saved one (the class is picked by ``kind``)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping

import torch

from policies.base import ChunkPolicy
from policies.checkpoint import read_policy_files
from policies.config import PolicyConfig
from policies.diffusion import DiffusionPolicy
from policies.flow import FLOW_CLIP_KEY, FLOW_CLIP_RESULT, FlowPolicy

POLICY_CLASSES: dict[str, type[ChunkPolicy]] = {"diffusion": DiffusionPolicy, "flow": FlowPolicy}


def build_policy(config: PolicyConfig, obs_shapes: Mapping[str, tuple[int, ...]], action_dim: int) -> ChunkPolicy:
    """A fresh (untrained, identity-normalised) policy of the configured kind."""
    if not isinstance(config, PolicyConfig):
        raise TypeError(f"config must be a PolicyConfig, got {type(config).__name__}")
    return POLICY_CLASSES[config.kind](config, obs_shapes, action_dim)


def load_policy(directory: str | os.PathLike, device: torch.device | str | None = None) -> ChunkPolicy:
    """Rebuild a policy saved with ``policy.save(directory)`` (or by training), in eval mode.

    ``device`` None keeps CPU unless CUDA is available. A missing directory or file raises
    FileNotFoundError naming the path and the training command that produces it.
    """
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    meta, state = read_policy_files(directory, device)
    config = PolicyConfig.from_dict(meta["policy"])
    if meta["kind"] == "flow" and config.clip_sample and meta.get(FLOW_CLIP_KEY) != FLOW_CLIP_RESULT:
        config.clip_sample = False  # saved before flow policies clipped their chunks: it samples as it did then
        warnings.warn(f"{directory}: this flow policy was saved before flow policies clipped their sampled chunks to the demos' "
                      "action range, so it loads with clip_sample=False and samples as it did when saved (the same chunks, which "
                      "monitors fitted on its rollouts expect); to clip them, set policy.config.clip_sample = True and "
                      "policy.save(<dir>), then re-record and refit its monitors", UserWarning, stacklevel=2)
    obs_shapes = {k: tuple(v) for k, v in meta["obs_shapes"].items()}
    policy = POLICY_CLASSES[meta["kind"]](config, obs_shapes, int(meta["action_dim"])).to(device)
    policy.load_state_dict(state)
    return policy.eval()
