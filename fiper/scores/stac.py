"""STAC (Sentinel): temporal consistency of consecutive sample batches (docs/method.md §6).

Decision t-1's chunks were predicted n_action_steps env steps earlier, so their steps
[k, H) cover the same future as steps [0, H-k) of decision t's chunks (k = n_action_steps)::

    previous:  |a0|a1|a2|a3|a4|a5|a6|a7|
    current:               |a0|a1|a2|a3|a4|a5|a6|a7|      (k = 4: 4 overlapping steps)

score = biased MMD^2 between the two overlapping sample sets with an RBF kernel whose
gamma = 1 / (2 * median pairwise squared distance of the pooled points); 0 at an episode's first
decision. Gripper dims are dropped by selecting ``dims``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from fiper.scores.base import ScoreBase
from fiper.scores.inputs import check_decision_ends, chunks, episode_starts


def mmd2_rbf_median(x: Tensor, y: Tensor) -> Tensor:
    """Biased MMD^2 of x (n, B, m) vs y (n, B', m) per row n, RBF kernel with the median heuristic."""
    z = torch.cat([x, y], dim=1)
    norms = z.pow(2).sum(dim=-1)
    sq = torch.baddbmm(norms.unsqueeze(2) + norms.unsqueeze(1), z, z.transpose(1, 2), alpha=-2.0).clamp_min_(0.0)  # Gram form
    p = z.shape[1]
    iu = torch.triu_indices(p, p, offset=1, device=z.device)
    med = sq[:, iu[0], iu[1]].median(dim=1).values.clamp_min(1e-12)
    k = torch.exp(-sq / (2.0 * med)[:, None, None])
    b = x.shape[1]
    kxx, kyy, kxy = k[:, :b, :b].mean(dim=(1, 2)), k[:, b:, b:].mean(dim=(1, 2)), k[:, :b, b:].mean(dim=(1, 2))
    return kxx + kyy - 2.0 * kxy


class STAC(ScoreBase):
    """Statistical temporal action consistency: MMD^2 between overlapping consecutive batches."""

    name = "stac"
    needs = frozenset({"samples"})
    dtype = torch.float64
    chunk_elements = 1 << 21
    streams_fit_samples = True  # the fit reads no batch (they are only checked to be finite)
    checks_offline_inputs = True  # score_offline checks each chunk through _inputs

    def __init__(self, n_action_steps: int | None = None, dims: Sequence[int] | None = None):
        # None: the evaluation fills it from the store (attr n_action_steps / env_step spacing)
        if n_action_steps is not None and (isinstance(n_action_steps, bool) or int(n_action_steps) < 1):
            raise ValueError(f"{self.name}: n_action_steps (env steps executed per decision) must be >= 1, got {n_action_steps}")
        if dims is not None:
            dims = [int(d) for d in dims]
            if not dims or len(set(dims)) != len(dims) or min(dims) < 0:
                raise ValueError(f"{self.name}: dims must be distinct non-negative action indices (or None for all), got {dims}")
        super().__init__(n_action_steps=None if n_action_steps is None else int(n_action_steps), dims=dims)
        self._previous: Tensor | None = None

    @property
    def dims(self) -> list[int]:
        dims = self._config["dims"]
        return list(range(self.sample_shape[2])) if dims is None else list(dims)

    def _check_fit_shapes(self) -> None:
        _, h, a = self.sample_shape
        if self._config["n_action_steps"] is None:
            raise ValueError(f"{self.name}: n_action_steps (env steps executed per decision) is not set; give it, "
                             "or record the store attr 'n_action_steps' (launch.evaluate fills it from there)")
        if self._config["n_action_steps"] >= h:
            raise ValueError(f"{self.name}: n_action_steps={self._config['n_action_steps']} leaves no overlap with horizon H={h}; STAC needs n_action_steps < H")
        if max(self.dims) >= a:
            raise ValueError(f"{self.name}: dims {self.dims} select action dimensions beyond the action size A={a}")

    def _fit(self, embeddings: None, samples: Tensor, decision_ends: np.ndarray, seed: int) -> None:
        return None  # no parameters: the kernel bandwidth is set per decision by the median heuristic

    def _overlap(self, samples: Tensor, *, old: bool) -> Tensor:
        """(n, B, (H-k)*d): the future both decisions predict, flattened per sample."""
        k = self._config["n_action_steps"]
        h = samples.shape[2]
        part = samples[:, :, k:] if old else samples[:, :, : h - k]
        return part[..., self.dims].reshape(samples.shape[0], samples.shape[1], -1)

    def _score(self, embeddings: None, samples: Tensor) -> Tensor:
        """Scores of decisions 1..n-1 of a contiguous run against their predecessor: (n-1,)."""
        return mmd2_rbf_median(self._overlap(samples[:-1], old=True), self._overlap(samples[1:], old=False))

    def reset(self) -> None:
        self._previous = None

    def _step(self, embedding: None, samples: Tensor) -> float:
        previous, self._previous = self._previous, samples
        if previous is None:
            return 0.0
        with torch.no_grad():
            return float(self._score(None, torch.cat([previous, samples]))[0])

    def score_offline(self, embeddings: Any = None, samples: Any = None, decision_ends: Any = None) -> np.ndarray:
        n = self._n_offline(None, samples)
        ends = check_decision_ends(self.name, decision_ends, n)
        starts = episode_starts(ends, n)
        out = np.zeros(n, dtype=np.float64)
        with torch.no_grad():
            for sl in chunks(n, self._chunk_rows()):
                lo = max(0, sl.start - 1)  # one decision of overlap with the previous chunk
                _, smp = self._inputs(None, samples[lo : sl.stop], batched=True)
                mmd = self._score(None, smp).cpu().numpy()  # scores of decisions lo+1 .. stop-1
                out[lo + 1 : sl.stop] = mmd
        out[starts] = 0.0
        return out

    def _chunk_rows(self) -> int:
        b = self.sample_shape[0]
        m = (self.sample_shape[1] - self._config["n_action_steps"]) * len(self.dims)
        per_decision = 2 * b * m + 4 * (2 * b) ** 2  # pooled points and a few (2B, 2B) kernel matrices
        return max(2, self.chunk_elements // per_decision)
