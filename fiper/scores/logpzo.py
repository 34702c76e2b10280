"""logpZO (FAIL-Detect): flow matching on the embedding; score = ||Z||^2 of its image in noise space.

A velocity MLP v(x, t) is trained with the linear conditional flow-matching path
x_t = (1 - t) x + t eps (x a standardised embedding at t = 0, eps ~ N(0, I) at t = 1, target
velocity eps - x). Scoring integrates an embedding from t = 0 to t = 1 with ``n_steps`` Euler
steps (one, as published) and returns ||Z||^2: in-distribution embeddings land near the typical
set of N(0, I), embeddings the flow never saw land far out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from fiper.nn import default_init_, fit_standardizer, load_module_tensors, mlp, module_tensors
from fiper.scores.base import ScoreBase
from fiper.scores.training import SMALL_NET_TRAIN, TrainConfig, TrainResult, episode_split, train


class VelocityField(nn.Module):
    """v(x, t): an MLP on [x, t]."""

    def __init__(self, dim: int, widths: Sequence[int], activation: str):
        super().__init__()
        self.net = mlp(dim + 1, widths, dim, activation=activation)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return self.net(torch.cat([x, t.expand(x.shape[0], 1)], dim=-1))

    def cfm_loss(self, x: Tensor, gen: torch.Generator) -> Tensor:
        """Linear-path conditional flow-matching loss for data rows x."""
        eps = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
        t = torch.rand(x.shape[0], 1, generator=gen, device=x.device, dtype=x.dtype)
        xt = (1 - t) * x + t * eps
        return (self(xt, t) - (eps - x)).pow(2).sum(dim=-1).mean()


class LogpZO(ScoreBase):
    """||Z||^2 after integrating the standardised embedding to noise space with the learned flow."""

    name = "logpzo"
    needs = frozenset({"embedding"})

    def __init__(
        self,
        widths: Sequence[int] = (64, 64),
        activation: str = "silu",
        n_steps: int = 1,
        train: TrainConfig | Mapping[str, Any] | None = None,
    ):
        widths = [int(w) for w in widths]
        if not widths or min(widths) < 1:
            raise ValueError(f"{self.name}: widths needs at least one hidden layer of width >= 1, got {widths}")
        if int(n_steps) < 1:
            raise ValueError(f"{self.name}: n_steps (Euler steps from data to noise) must be >= 1, got {n_steps}")
        mlp(1, widths, 1, activation=activation)  # validates the activation name early
        cfg = TrainConfig.of(train, **SMALL_NET_TRAIN, max_epochs=30, patience=5)
        super().__init__(widths=widths, activation=activation, n_steps=int(n_steps), train=cfg.to_dict())
        self.flow: VelocityField | None = None
        self.mean = self.std = None
        self.fit_result: TrainResult | None = None

    def _build(self) -> VelocityField:
        return VelocityField(self.embedding_dim, self._config["widths"], self._config["activation"])

    def _fit(self, embeddings: Tensor, samples: None, decision_ends: np.ndarray, seed: int) -> None:
        cfg = TrainConfig.of(self._config["train"])
        tr, va = (torch.as_tensor(i, device=self.device) for i in episode_split(decision_ends, cfg.val_fraction, seed))
        self.mean, self.std = fit_standardizer(embeddings[tr])
        x = (embeddings - self.mean) / self.std
        self.flow = default_init_(self._build(), generator=torch.Generator().manual_seed(seed)).to(self.device)
        self.fit_result = train(self.flow, lambda b, g: self.flow.cfm_loss(b[0], g), (x[tr],), (x[va],), cfg, seed)
        self.flow.eval()

    def _score(self, embeddings: Tensor, samples: None) -> Tensor:
        x = (embeddings - self.mean) / self.std
        n = self._config["n_steps"]
        for i in range(n):  # integration steps, not decisions: every row advances together
            t = torch.full((1, 1), i / n, device=x.device, dtype=x.dtype)
            x = x + self.flow(x, t) / n
        return x.pow(2).sum(dim=-1)

    def _chunk_rows(self) -> int:
        return max(1, self.chunk_elements // max([self.embedding_dim, *self._config["widths"]]))

    def _tensors(self) -> dict[str, Tensor]:
        return {"mean": self.mean, "std": self.std, **module_tensors(self.flow, "flow")}

    def _load_tensors(self, tensors: Mapping[str, Tensor]) -> None:
        self.mean, self.std = self._take(tensors, "mean", "std")
        self.flow = self._build().to(self.device)
        load_module_tensors(self.flow, dict(tensors), "flow")
        self.flow.eval()
