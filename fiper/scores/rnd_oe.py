"""RND-OE: out-of-distribution observations measured in the policy's own embedding space (docs/method.md §2).

s_O(t) = ||f(z_t) - g(z_t)||_2 with z standardised by the training mean / std, g a frozen random
MLP and f a deeper trained MLP. ``whiten=True`` (not published) also decorrelates z with the
shrunk training covariance, so a shift along a low-variance direction of the embedding moves
the input as much as one along a high-variance direction (as the Mahalanobis baseline sees it).
The published widths (d->1024->2048->4096->512 target, 6-layer predictor) are scaled down: by
default sized from D at fit (hidden clip(2D, 32, 128), a cheap step), or given explicitly; keep
the predictor the larger one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from fiper.nn import fit_standardizer, fit_whitener, load_module_tensors, module_tensors
from fiper.scores.base import ScoreBase
from fiper.scores.rnd_core import RNDNetworks, check_widths, host_forward, host_layers, sized_widths
from fiper.scores.training import SMALL_NET_TRAIN, TrainConfig, TrainResult, episode_split, train


class RNDOE(ScoreBase):
    """Random network distillation on the observation embedding z (D,)."""

    name = "rnd_oe"
    needs = frozenset({"embedding"})

    def __init__(
        self,
        target_widths: Sequence[int] | None = (128, 128),
        predictor_widths: Sequence[int] | None = (128, 256, 128),
        out_dim: int | None = 64,
        train: TrainConfig | Mapping[str, Any] | None = None,
        whiten: bool = True,
    ):
        # None widths: sized from the embedding at fit (rnd_core.sized_widths); the fitted config stores the numbers.
        # whiten=False is the published input (standardised only); whitening measured better (docs/scores.md).
        given = check_widths(self.name, *sized_widths(1, target_widths, predictor_widths, out_dim))
        super().__init__(
            target_widths=None if target_widths is None else given[0],
            predictor_widths=None if predictor_widths is None else given[1],
            out_dim=None if out_dim is None else given[2],
            train=TrainConfig.of(train, **SMALL_NET_TRAIN, max_epochs=60, patience=5).to_dict(),
            whiten=bool(whiten),
        )
        self.nets: RNDNetworks | None = None
        self.mean = self.std = self.whiten = None  # whiten: (D, D) applied after standardising, or None
        self.fit_result: TrainResult | None = None
        self._host_cache: tuple | None = None

    def _build(self) -> RNDNetworks:
        c = self._config
        return RNDNetworks(self.embedding_dim, c["target_widths"], c["predictor_widths"], c["out_dim"])

    def _fit(self, embeddings: Tensor, samples: None, decision_ends: np.ndarray, seed: int) -> None:
        cfg = TrainConfig.of(self._config["train"])
        tr, va = (torch.as_tensor(i, device=self.device) for i in episode_split(decision_ends, cfg.val_fraction, seed))
        c = self._config
        c["target_widths"], c["predictor_widths"], c["out_dim"] = sized_widths(self.embedding_dim, c["target_widths"], c["predictor_widths"], c["out_dim"])
        self.mean, self.std = fit_standardizer(embeddings[tr])
        x = (embeddings - self.mean) / self.std
        if c["whiten"]:
            self.whiten = fit_whitener(x[tr] - x[tr].mean(dim=0))[0]
            x = x @ self.whiten.T
        self.nets = self._build().init_(seed).to(self.device)
        self.fit_result = train(self.nets, lambda b, g: self.nets.loss(b[0]), (x[tr],), (x[va],), cfg, seed)
        self.nets.eval()

    def _score(self, embeddings: Tensor, samples: None) -> Tensor:
        x = (embeddings - self.mean).div_(self.std)
        return self.nets(x if self.whiten is None else x @ self.whiten.T)

    def _step(self, embeddings: Tensor, samples: None) -> float:
        """One decision: on the CPU the same float32 network runs in numpy on views of its weights
        (a dozen torch calls on one row cost more than the arithmetic); elsewhere in torch."""
        host = self._host()
        if host is None:
            return super()._step(embeddings, samples)
        mean, std, whiten, target, predictor = host
        x = (embeddings.numpy()[0] - mean) / std
        if whiten is not None:
            x = whiten @ x
        return float(np.linalg.norm(host_forward(predictor, x) - host_forward(target, x)))

    def _host(self) -> tuple | None:
        """Cached numpy views (mean, std, whiten or None, target layers, predictor layers) of this CPU score, else None."""
        if self._host_cache is None or self._host_cache[0] is not self.nets:
            views = None
            if self.device.type == "cpu" and self.mean.dtype == torch.float32:
                target, predictor = host_layers(self.nets.target), host_layers(self.nets.predictor)
                if target is not None and predictor is not None:
                    whiten = None if self.whiten is None else self.whiten.numpy()
                    views = (self.mean.numpy(), self.std.numpy(), whiten, target, predictor)
            self._host_cache = (self.nets, views)
        return self._host_cache[1]

    def _chunk_rows(self) -> int:
        return max(1, self.chunk_elements // max(self.embedding_dim, self.nets.max_width))

    def _tensors(self) -> dict[str, Tensor]:
        extra = {} if self.whiten is None else {"whiten": self.whiten}
        return {"mean": self.mean, "std": self.std, **extra, **module_tensors(self.nets, "nets")}

    @classmethod
    def from_state(cls, tensors: Mapping[str, Tensor], config: Mapping[str, Any], *, device: str | torch.device = "cpu") -> RNDOE:
        """As ScoreBase; an artifact saved before the ``whiten`` option had none (its params lack the key)."""
        params = dict(config.get("params", {}))
        params.setdefault("whiten", False)
        return super().from_state(tensors, {**config, "params": params}, device=device)

    def _load_tensors(self, tensors: Mapping[str, Tensor]) -> None:
        self.mean, self.std = self._take(tensors, "mean", "std")
        self.whiten = self._take(tensors, "whiten")[0] if self._config["whiten"] else None
        self._host_cache = None
        self.nets = self._build().to(self.device)
        load_module_tensors(self.nets, dict(tensors), "nets")
        self.nets.eval()
