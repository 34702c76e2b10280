"""Training loop shared by the learned scores: AdamW, cosine decay, early stopping on held-out episodes."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn


@dataclass
class TrainConfig:
    """Optimiser settings. The field defaults are the published RND-OE recipe (AdamW 1e-4 -> 1e-6 cosine, wd 1e-5,
    batch 256); each learned score of fiper passes its own through ``TrainConfig.of`` (its ``train`` default)."""

    lr: float = 1e-4
    min_lr: float = 1e-6
    weight_decay: float = 1e-5
    batch_size: int = 256
    max_epochs: int = 100
    patience: int = 10  # epochs without held-out improvement before stopping
    val_fraction: float = 0.1  # share of episodes held out for early stopping (0 disables it)

    def __post_init__(self) -> None:
        if not (self.lr > 0 and 0 <= self.min_lr <= self.lr):
            raise ValueError(f"need lr > 0 and 0 <= min_lr <= lr, got lr={self.lr}, min_lr={self.min_lr}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.batch_size < 1 or self.max_epochs < 1 or self.patience < 1:
            raise ValueError(
                f"batch_size, max_epochs and patience must be >= 1, got {self.batch_size}, {self.max_epochs}, {self.patience}"
            )
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction must lie in [0, 1), got {self.val_fraction}")

    @classmethod
    def of(cls, value: TrainConfig | Mapping[str, Any] | None, **defaults: Any) -> TrainConfig:
        """A TrainConfig from itself, a mapping of its fields (yaml) or None; ``defaults`` fill unset fields."""
        if isinstance(value, TrainConfig):
            return value
        value = dict(value or {})
        unknown = (set(value) | set(defaults)) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown training settings {sorted(unknown)}; known: {sorted(cls.__dataclass_fields__)}")
        return cls(**{**defaults, **value})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# The defaults of fiper's scaled-down networks: the published lr 1e-4 is tuned for 4096-wide
# nets; ours (scaled-down widths, 256-512 when this was measured) reached a lower held-out loss
# within 100 epochs at 1e-3.
SMALL_NET_TRAIN: dict[str, Any] = {"lr": 1e-3}


@dataclass
class TrainResult:
    """What a fit did: epochs run, best held-out loss (nan without hold-out), per-epoch losses."""

    epochs: int
    best_val: float
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)


def episode_split(decision_ends: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Decision indices (train, val): whole episodes go to val (at least one when there are >= 2).

    With a single episode the held-out part is a random ``val_fraction`` of its decisions.
    """
    n = int(decision_ends[-1])
    rng = np.random.default_rng(seed)
    if val_fraction <= 0 or n < 2:
        return np.arange(n), np.zeros(0, dtype=np.int64)
    starts = np.concatenate([[0], decision_ends[:-1]])
    lengths = decision_ends - starts
    episodes = np.flatnonzero(lengths > 0)
    if len(episodes) < 2:
        perm = rng.permutation(n)
        n_val = max(1, int(round(val_fraction * n)))
        return np.sort(perm[n_val:]), np.sort(perm[:n_val])
    n_val = min(len(episodes) - 1, max(1, int(round(val_fraction * len(episodes)))))
    val_eps = rng.choice(episodes, size=n_val, replace=False)
    is_val = np.zeros(n, dtype=bool)
    for e in val_eps:  # loop over held-out episodes only (a handful), not decisions
        is_val[starts[e] : decision_ends[e]] = True
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def train(
    model: nn.Module,
    loss_fn: Callable[[tuple[Tensor, ...], torch.Generator], Tensor],
    train_data: tuple[Tensor, ...],
    val_data: tuple[Tensor, ...] | None,
    cfg: TrainConfig,
    seed: int,
) -> TrainResult:
    """Minimise ``loss_fn(batch, generator)`` over ``train_data`` rows; keep the best held-out weights.

    ``loss_fn`` may draw noise from the generator (flow matching); the held-out loss is evaluated
    with a generator re-seeded every epoch so that epochs are compared on identical noise.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    device = train_data[0].device
    n = int(train_data[0].shape[0])
    steps_per_epoch = max(1, math.ceil(n / cfg.batch_size))
    total = steps_per_epoch * cfg.max_epochs
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    ratio = cfg.min_lr / cfg.lr
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: ratio + (1 - ratio) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    perm_gen = torch.Generator().manual_seed(seed)
    noise_gen = torch.Generator(device=device).manual_seed(seed + 1)
    has_val = val_data is not None and int(val_data[0].shape[0]) > 0
    result = TrainResult(epochs=0, best_val=float("nan"))
    best_state, best, bad = None, math.inf, 0
    for epoch in range(cfg.max_epochs):
        model.train()
        perm = torch.randperm(n, generator=perm_gen).to(device)
        total_loss = 0.0
        for start in range(0, n, cfg.batch_size):
            idx = perm[start : start + cfg.batch_size]
            loss = loss_fn(tuple(t[idx] for t in train_data), noise_gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total_loss += float(loss.detach()) * len(idx)
        result.train_loss.append(total_loss / n)
        result.epochs = epoch + 1
        if not has_val:
            continue
        val = evaluate(model, loss_fn, val_data, cfg.batch_size, seed + 2)
        result.val_loss.append(val)
        if val < best:
            best, bad = val, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            bad += 1
            if bad >= cfg.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
        result.best_val = best
    model.eval()
    return result


def evaluate(model: nn.Module, loss_fn: Callable, data: tuple[Tensor, ...], batch_size: int, seed: int) -> float:
    """Mean loss over ``data`` without gradients, with reproducible noise."""
    model.eval()
    gen = torch.Generator(device=data[0].device).manual_seed(seed)
    n = int(data[0].shape[0])
    total = 0.0
    with torch.no_grad():
        for start in range(0, n, batch_size):
            batch = tuple(t[start : start + batch_size] for t in data)
            total += float(loss_fn(batch, gen)) * int(batch[0].shape[0])
    return total / n


class ColumnMoments:
    """Per-column mean and population std of rows added chunk by chunk (float64, Chan's merge).

    The streamed form of ``fiper.nn.fit_standardizer`` for data too large to hold at once; the
    two agree within float32 round-off (near-constant columns get std 1 in both).
    """

    def __init__(self) -> None:
        self.n = 0
        self.mean: Tensor | None = None
        self.m2: Tensor | None = None  # summed squared deviations from the mean

    def add(self, rows: Tensor) -> None:
        """Add rows (k, C)."""
        k = int(rows.shape[0])
        if k == 0:
            return
        x = rows.double()
        mean = x.mean(dim=0)
        m2 = (x - mean).pow(2).sum(dim=0)
        if self.n == 0:
            self.n, self.mean, self.m2 = k, mean, m2
            return
        total = self.n + k
        delta = mean - self.mean
        self.mean = self.mean + delta * (k / total)
        self.m2 = self.m2 + m2 + delta.pow(2) * (self.n * k / total)
        self.n = total

    def standardizer(self, dtype: torch.dtype, *, eps: float = 1e-6) -> tuple[Tensor, Tensor]:
        """(mean, std) as ``dtype``, as fit_standardizer gives them."""
        if self.n == 0:
            raise ValueError("ColumnMoments: no rows were added; fit on at least one decision")
        mean = self.mean.to(dtype)
        std = (self.m2 / self.n).sqrt().to(dtype) if self.n > 1 else torch.ones_like(mean)
        return mean, torch.where(std > eps, std, torch.ones_like(std))
