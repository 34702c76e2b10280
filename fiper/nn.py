"""Small torch helpers shared by fiper's learned scores: MLPs, seeded init, standardisation."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

ACTIVATIONS = {"leaky_relu": nn.LeakyReLU, "relu": nn.ReLU, "silu": nn.SiLU, "gelu": nn.GELU, "tanh": nn.Tanh}


def mlp(in_dim: int, widths: Sequence[int], out_dim: int, *, activation: str = "leaky_relu") -> nn.Sequential:
    """Linear layers in_dim -> widths... -> out_dim with ``activation`` between them (none at the end)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}")
    dims = [int(in_dim), *(int(w) for w in widths), int(out_dim)]
    if min(dims) < 1:
        raise ValueError(f"every layer width must be >= 1, got {dims}")
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


def orthogonal_init_(module: nn.Module, *, gain: float = math.sqrt(2.0), generator: torch.Generator | None = None) -> nn.Module:
    """Orthogonal weights with ``gain`` and zero biases for every Linear layer (the RND recipe)."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.orthogonal_(layer.weight, gain=gain, generator=generator)
            nn.init.zeros_(layer.bias)
    return module


def default_init_(module: nn.Module, *, generator: torch.Generator | None = None) -> nn.Module:
    """PyTorch's own Linear init (Kaiming-uniform weights, uniform bias), drawn from ``generator``."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5.0), generator=generator)
            bound = 1.0 / math.sqrt(layer.in_features)
            nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
    return module


def fit_standardizer(x: Tensor, *, eps: float = 1e-6) -> tuple[Tensor, Tensor]:
    """Per-column mean and std of ``x`` (rows are samples); near-constant columns get std 1."""
    mean = x.mean(dim=0)
    std = x.std(dim=0, unbiased=False) if x.shape[0] > 1 else torch.ones_like(mean)
    std = torch.where(std > eps, std, torch.ones_like(std))
    return mean, std


def module_tensors(module: nn.Module, prefix: str) -> dict[str, Tensor]:
    """The module's state dict as detached CPU tensors under ``prefix.`` (for safetensors)."""
    return {f"{prefix}.{k}": v.detach().cpu().contiguous() for k, v in module.state_dict().items()}


def load_module_tensors(module: nn.Module, tensors: dict[str, Tensor], prefix: str) -> None:
    """Load the ``prefix.``-keyed entries of ``tensors`` into ``module`` (strict: all keys must match)."""
    sub = {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
    try:
        module.load_state_dict(sub, strict=True)
    except RuntimeError as err:
        raise ValueError(f"saved tensors for '{prefix}' do not fit the configured network: {err}") from err
