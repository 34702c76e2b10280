"""ACE: action-chunk entropy, the sharpness of the policy's sampled batch (METHOD §3).

For every prediction step k the B predicted positions p_k^(1..B) are binned on a grid with cell
width c_d = kappa * range_d (range_d fitted on calibration predictions; a zero range takes the
largest one) whose origin is the batch minimum minus 1 % of the batch spread; H_k is the
histogram entropy in bits and ACE = mean_k H_k, so 0 <= ACE <= log2 B. A confident policy puts
its samples in a few sharp modes (low entropy) even when the modes are far apart.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from fiper.scores.base import ScoreBase


def histogram_entropy_bits(cells: Tensor) -> Tensor:
    """Entropy in bits of the empirical distribution of cell ids: cells (M, B, d) long -> (M,).

    Equal cell-id rows are brought together by sorting along B, equal neighbours form one cell,
    and cell counts come from a scatter-add: no Python loop over rows. The d ids are packed into
    one int64 key when their ranges fit in 62 bits (one sort); otherwise rows are sorted
    lexicographically (stable sorts, last dim first).
    """
    m, b, d = cells.shape
    cells = cells - cells.amin(dim=1, keepdim=True)  # ids from 0 within each row
    radix = cells.amax(dim=(0, 1)) + 1 if m else torch.ones(d, dtype=torch.long, device=cells.device)
    if float(torch.log2(radix.double()).sum()) < 62:
        strides = torch.cumprod(torch.cat([radix.new_ones(1), radix[:-1]]), dim=0)
        ranked = (cells * strides).sum(dim=-1).sort(dim=1).values
        same = ranked[:, 1:] == ranked[:, :-1]
    else:
        order = torch.arange(b, device=cells.device).expand(m, b)
        for j in reversed(range(d)):
            key = torch.gather(cells[..., j], 1, order)
            order = torch.gather(order, 1, torch.sort(key, dim=1, stable=True).indices)
        ranked = torch.gather(cells, 1, order.unsqueeze(-1).expand(m, b, d))
        same = (ranked[:, 1:] == ranked[:, :-1]).all(dim=-1)
    new_cell = torch.ones(m, b, dtype=torch.bool, device=cells.device)
    new_cell[:, 1:] = ~same
    group = new_cell.long().cumsum(dim=1) - 1  # cell index of every sorted point
    counts = torch.zeros(m, b, dtype=torch.float64, device=cells.device)
    counts.scatter_add_(1, group, torch.ones_like(counts))
    # H = -sum (n/B) log2(n/B) = log2 B - sum n log2 n / B   (empty cells: n log2 max(n, 1) = 0)
    nlogn = (counts * torch.log2(counts.clamp_min(1.0))).sum(dim=1)
    return (math.log2(b) - nlogn / b).clamp_min(0.0)


class ACE(ScoreBase):
    """Mean over the horizon of the per-step joint histogram entropy (bits) of the B samples."""

    name = "ace"
    needs = frozenset({"samples"})
    dtype = torch.float64

    def __init__(self, kappa: float = 0.03, dims: Sequence[int] | None = None, integrate: bool = False, margin: float = 0.01):
        if not kappa > 0:
            raise ValueError(f"{self.name}: kappa (cell width / calibration range) must be > 0, got {kappa}")
        if not margin >= 0:
            raise ValueError(f"{self.name}: margin (grid origin offset / batch spread) must be >= 0, got {margin}")
        if dims is not None:
            dims = [int(d) for d in dims]
            if not dims or len(set(dims)) != len(dims) or min(dims) < 0:
                raise ValueError(f"{self.name}: dims must be distinct non-negative action indices (or None for all), got {dims}")
        super().__init__(kappa=float(kappa), dims=dims, integrate=bool(integrate), margin=float(margin))
        self.ranges: Tensor | None = None
        self.cell_width: Tensor | None = None

    @property
    def dims(self) -> list[int]:
        dims = self._config["dims"]
        return list(range(self.sample_shape[2])) if dims is None else list(dims)

    @property
    def max_entropy(self) -> float:
        """log2 B, the largest possible ACE for the fitted batch size."""
        return float(np.log2(self.sample_shape[0]))

    def _check_fit_shapes(self) -> None:
        a = self.sample_shape[2]
        if max(self.dims) >= a:
            raise ValueError(f"{self.name}: dims {self.dims} select action dimensions beyond the action size A={a}")

    def positions(self, samples: Tensor) -> Tensor:
        """(n, B, H, d) positions: the selected dims, integrated over the horizon if they are velocities."""
        dims = self.dims
        if dims != list(range(samples.shape[-1])):
            samples = samples.index_select(-1, torch.tensor(dims, device=samples.device))
        return samples.cumsum(dim=2) if self._config["integrate"] else samples

    def _fit(self, embeddings: None, samples: Tensor, decision_ends: np.ndarray, seed: int) -> None:
        pos = self.positions(samples).reshape(-1, len(self.dims))
        ranges = pos.amax(dim=0) - pos.amin(dim=0)
        if not bool((ranges > 0).any()):
            raise ValueError(f"{self.name}: every selected action dim {self.dims} is constant over the calibration predictions; ACE needs a non-zero range to set its cell width")
        ranges = torch.where(ranges > 0, ranges, ranges.max())
        self._set_ranges(ranges)

    def _set_ranges(self, ranges: Tensor) -> None:
        self.ranges = ranges.to(device=self.device, dtype=self.dtype)
        self.cell_width = self._config["kappa"] * self.ranges

    def _score(self, embeddings: None, samples: Tensor) -> Tensor:
        n, b, h, _ = samples.shape
        pos = self.positions(samples).transpose(1, 2).reshape(n * h, b, -1)  # one row per (decision, step)
        lo, hi = pos.amin(dim=1, keepdim=True), pos.amax(dim=1, keepdim=True)
        origin = lo - self._config["margin"] * (hi - lo)
        cells = torch.floor((pos - origin) / self.cell_width).long()
        return histogram_entropy_bits(cells).reshape(n, h).mean(dim=1)

    def _tensors(self) -> dict[str, Tensor]:
        return {"ranges": self.ranges}

    def _load_tensors(self, tensors: Mapping[str, Tensor]) -> None:
        (ranges,) = self._take(tensors, "ranges")
        self._set_ranges(ranges)
