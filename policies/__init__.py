"""Generative action-chunk policies implementing fiper's GenerativePolicy protocol.

Diffusion (DDPM training, DDIM sampling) and flow matching (linear path, Euler), with a temporal
U-Net or MLP denoiser and a low-dim or image observation encoder. See docs/policies.md.
"""

from policies.base import ChunkPolicy
from policies.config import PolicyConfig, TrainConfig
from policies.diffusion import DiffusionPolicy
from policies.factory import build_policy, load_policy
from policies.flow import FlowPolicy
from policies.training import TrainResult, train_policy

__all__ = [
    "ChunkPolicy",
    "DiffusionPolicy",
    "FlowPolicy",
    "PolicyConfig",
    "TrainConfig",
    "TrainResult",
    "build_policy",
    "load_policy",
    "train_policy",
]
