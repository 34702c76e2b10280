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
    """PyTorch's own Linear and convolution init (Kaiming-uniform weights, uniform bias), drawn from ``generator``."""
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.modules.conv._ConvNd)):
            nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5.0), generator=generator)
            if layer.bias is not None:
                fan_in, _ = nn.init._calculate_fan_in_and_fan_out(layer.weight)
                bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
                nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
    return module


def check_constant_std(value: float | str, name: str = "fit_standardizer: constant_std") -> float | str:
    """``value`` as fit_standardizer takes it: 'median' or a positive float; ValueError naming ``name`` otherwise."""
    if value == "median":
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and float(value) > 0:
        return float(value)
    raise ValueError(f"{name} must be 'median' (the median spread of the columns that vary) or a positive number, "
                     f"got {value!r}")


def fit_standardizer(x: Tensor, *, eps: float = 1e-6, constant_std: float | str = 1.0) -> tuple[Tensor, Tensor]:
    """Per-column mean and std of ``x`` (rows are samples). Near-constant columns get std
    ``constant_std``: a number, or "median", the median std of the other columns, so that a change in
    a column that never moved is measured in the units of the columns that did."""
    constant_std = check_constant_std(constant_std)
    mean = x.mean(dim=0)
    std = x.std(dim=0, unbiased=False) if x.shape[0] > 1 else torch.ones_like(mean)
    moved = std > eps
    if constant_std == "median":
        fill = float(std[moved].median()) if bool(moved.any()) else 1.0
    else:
        fill = constant_std
    return mean, torch.where(moved, std, torch.full_like(std, fill))


def ledoit_wolf_shrinkage(xc: Tensor) -> float:
    """Ledoit-Wolf shrinkage intensity in [0, 1] for centred rows xc (n, p)."""
    n, p = xc.shape
    s = xc.T @ xc / n
    mu = float(torch.trace(s)) / p
    delta = float((s - mu * torch.eye(p, dtype=xc.dtype, device=xc.device)).pow(2).sum()) / p
    beta = (float(xc.pow(2).sum(dim=1).pow(2).sum()) / n - float(s.pow(2).sum())) / (n * p)
    return 0.0 if delta <= 0 else float(min(max(beta, 0.0), delta) / delta)


def fit_whitener(xc: Tensor, shrinkage: float | None = None) -> tuple[Tensor, float]:
    """(W, s) with ||W d||_2 the Mahalanobis length of d under the covariance of the centred rows
    xc (n, p), shrunk toward a scaled identity, (1 - s) S + s (tr S / p) I; s None = Ledoit-Wolf.
    W = L^-1 of the Cholesky factor, so whitening is one matrix product."""
    n, p = xc.shape
    s = xc.T @ xc / n
    alpha = ledoit_wolf_shrinkage(xc) if shrinkage is None else float(shrinkage)
    scale = float(torch.trace(s)) / p
    scale = scale if scale > 0 else 1.0
    eye = torch.eye(p, dtype=xc.dtype, device=xc.device)
    cov = (1 - alpha) * s + alpha * scale * eye
    chol, info = torch.linalg.cholesky_ex(cov)
    if int(info) != 0:  # singular sample covariance and no shrinkage: add the smallest ridge that works
        chol = torch.linalg.cholesky(cov + 1e-6 * scale * eye)
    return torch.linalg.solve_triangular(chol, eye, upper=False), alpha


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
