"""Adapters that make policies from other stacks fiper GenerativePolicies (docs/adapters.md).

``DiffusersPolicy`` wraps the parts diffusion_policy and lerobot build their diffusion policies from
(observation encoder, conditional noise-prediction net, diffusers scheduler, normaliser). diffusers is
optional (``pip install 'fiper[adapters]'``) and imported only when a scheduler is built by name.
"""

from fiper.adapters.diffusers_policy import DiffusersPolicy
from fiper.adapters.schedulers import INSTALL, clean_estimate, make_scheduler, require_diffusers

__all__ = ["INSTALL", "DiffusersPolicy", "clean_estimate", "make_scheduler", "require_diffusers"]
