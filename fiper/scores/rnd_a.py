"""RND-A: random network distillation on the action chunk, conditioned on the embedding (docs/method.md §6).

Each of the B sampled chunks is flattened (H*A), standardised with the training mean / std and
concatenated with the standardised embedding; the per-decision score is the mean RND distance
over the B samples.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from fiper.nn import fit_standardizer, load_module_tensors, module_tensors
from fiper.scores.base import ScoreBase
from fiper.scores.rnd_core import RNDNetworks, check_widths
from fiper.scores.inputs import FitRows
from fiper.scores.training import SMALL_NET_TRAIN, ColumnMoments, TrainConfig, TrainResult, episode_split, train


class RNDA(ScoreBase):
    """Random network distillation on (action chunk, embedding) pairs; mean over the batch."""

    name = "rnd_a"
    needs = frozenset({"embedding", "samples"})
    streams_fit_samples = True  # the fit keeps the chunks' moments and samples_per_decision samples per decision

    def __init__(
        self,
        target_widths: Sequence[int] = (64,),
        predictor_widths: Sequence[int] = (64, 64),
        out_dim: int = 32,
        samples_per_decision: int | None = 4,
        train: TrainConfig | Mapping[str, Any] | None = None,
    ):
        tw, pw, out = check_widths(self.name, target_widths, predictor_widths, out_dim)
        if samples_per_decision is not None and int(samples_per_decision) < 1:
            raise ValueError(f"{self.name}: samples_per_decision must be >= 1 or None (all B), got {samples_per_decision}")
        super().__init__(
            target_widths=tw, predictor_widths=pw, out_dim=out,
            samples_per_decision=None if samples_per_decision is None else int(samples_per_decision),
            train=TrainConfig.of(train, **SMALL_NET_TRAIN, max_epochs=20, patience=5).to_dict(),
        )
        self.nets: RNDNetworks | None = None
        self.emb_mean = self.emb_std = self.act_mean = self.act_std = None
        self.fit_result: TrainResult | None = None

    @property
    def in_dim(self) -> int:
        _, h, a = self.sample_shape
        return h * a + self.embedding_dim

    def _build(self) -> RNDNetworks:
        c = self._config
        return RNDNetworks(self.in_dim, c["target_widths"], c["predictor_widths"], c["out_dim"])

    def _inputs_of(self, embeddings: Tensor, samples: Tensor) -> Tensor:
        """(n, B, H*A + D): standardised flattened chunks next to their standardised embedding."""
        n, b = samples.shape[:2]
        act = (samples.reshape(n, b, -1) - self.act_mean) / self.act_std
        emb = ((embeddings - self.emb_mean) / self.emb_std).unsqueeze(1).expand(n, b, -1)
        return torch.cat([act, emb], dim=-1)

    def _fit(self, embeddings: Tensor, samples: FitRows, decision_ends: np.ndarray, seed: int) -> None:
        cfg = TrainConfig.of(self._config["train"])
        b, h, a = samples.shape[1:]
        tr_rows, va_rows = episode_split(decision_ends, cfg.val_fraction, seed)
        tr, va = (torch.as_tensor(i, device=self.device) for i in (tr_rows, va_rows))
        self.emb_mean, self.emb_std = fit_standardizer(embeddings[tr])
        is_tr = np.zeros(samples.shape[0], dtype=bool)
        is_tr[tr_rows] = True
        m = b if self._config["samples_per_decision"] is None else min(b, self._config["samples_per_decision"])
        gen = torch.Generator().manual_seed(seed)
        moments, chosen = ColumnMoments(), []
        for sl, chunk in samples.chunks(self._fit_chunk_rows()):
            moments.add(chunk[torch.as_tensor(is_tr[sl], device=self.device)].reshape(-1, h * a))
            # m random samples per decision; rand drawn chunk by chunk gives the numbers of one (n, b) draw
            pick = torch.rand(chunk.shape[0], b, generator=gen).argsort(dim=1)[:, :m].to(self.device)
            chosen.append(torch.take_along_dim(chunk, pick[:, :, None, None], dim=1))
        self.act_mean, self.act_std = moments.standardizer(self.dtype)
        x = self._inputs_of(embeddings, torch.cat(chosen))  # (n, m, in_dim)
        self.nets = self._build().init_(seed).to(self.device)
        x_tr, x_va = (x[idx].reshape(-1, x.shape[-1]) for idx in (tr, va))  # decisions -> their sample rows
        self.fit_result = train(self.nets, lambda bt, g: self.nets.loss(bt[0]), (x_tr,), (x_va,), cfg, seed)
        self.nets.eval()

    def _score(self, embeddings: Tensor, samples: Tensor) -> Tensor:
        x = self._inputs_of(embeddings, samples)
        return self.nets(x).mean(dim=1)

    def _chunk_rows(self) -> int:
        b = self.sample_shape[0]
        return max(1, self.chunk_elements // (b * max(self.in_dim, self.nets.max_width)))

    def _tensors(self) -> dict[str, Tensor]:
        return {
            "emb_mean": self.emb_mean, "emb_std": self.emb_std, "act_mean": self.act_mean, "act_std": self.act_std,
            **module_tensors(self.nets, "nets"),
        }

    def _load_tensors(self, tensors: Mapping[str, Tensor]) -> None:
        self.emb_mean, self.emb_std, self.act_mean, self.act_std = self._take(tensors, "emb_mean", "emb_std", "act_mean", "act_std")
        self.nets = self._build().to(self.device)
        load_module_tensors(self.nets, dict(tensors), "nets")
        self.nets.eval()
