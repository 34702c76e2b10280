"""ACE: action-chunk entropy, the sharpness of the policy's sampled batch (docs/method.md §3).

For every prediction step k the B predicted positions p_k^(1..B) are binned on a grid with cell
width c_d = kappa * range_d (range_d fitted on calibration predictions; a zero range takes the
largest one) whose origin is the batch minimum minus 1 % of the batch spread; H_k is the
histogram entropy in bits and ACE = mean_k H_k, so 0 <= ACE <= log2 B. A confident policy puts
its samples in a few sharp modes (low entropy) even when the modes are far apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from fiper.scores import histogram_kernel
from fiper.scores.base import ScoreBase
from fiper.scores.histogram import entropy_terms, entropy_bits, grid_cells, histogram_entropy_bits, new_cell_mask
from fiper.scores.inputs import FitRows

__all__ = ["ACE", "histogram_entropy_bits"]


class ACE(ScoreBase):
    """Mean over the horizon of the per-step joint histogram entropy (bits) of the B samples."""

    name = "ace"
    needs = frozenset({"samples"})
    dtype = torch.float64
    backend = "numpy"
    chunk_points = 1 << 17  # points per offline chunk: a few MB of working arrays (numpy path)
    kernel_chunk_points = 1 << 20  # the compiled path has no per-point working arrays
    # One choice per process: the compiled kernel (numba) when importable, else numpy, online and offline alike.
    compiled = histogram_kernel.AVAILABLE
    parallel_offline = False  # opt-in: spread a store's decisions over numba's threads (same values); see histogram_kernel
    streams_fit_samples = True  # the fit keeps each dim's min and max only

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

    def points(self, samples: np.ndarray) -> np.ndarray:
        """(B, d, n, H) float64 copy of the selected dims of samples (n, B, H, A), integrated over the
        horizon if they are velocities: one set of B points per (decision, step), sets along n then H."""
        dims = self.dims
        lo, hi = dims[0], dims[-1] + 1
        picked = samples[..., lo:hi] if dims == list(range(lo, hi)) else samples[..., dims]
        pts = np.array(picked.transpose(1, 3, 0, 2), dtype=np.float64, order="C")
        return np.cumsum(pts, axis=3, out=pts) if self._config["integrate"] else pts

    def _fit(self, embeddings: None, samples: FitRows, decision_ends: np.ndarray, seed: int) -> None:
        lo = hi = None
        for _, chunk in samples.chunks(self._chunk_rows()):  # min / max are exact in any order
            pts = self.points(chunk)
            c_lo, c_hi = pts.min(axis=(0, 2, 3)), pts.max(axis=(0, 2, 3))
            lo, hi = (c_lo, c_hi) if lo is None else (np.minimum(lo, c_lo), np.maximum(hi, c_hi))
        ranges = hi - lo
        if not bool((ranges > 0).any()):
            raise ValueError(f"{self.name}: every selected action dim {self.dims} is constant over the calibration predictions; ACE needs a non-zero range to set its cell width")
        ranges = np.where(ranges > 0, ranges, ranges.max())
        self._set_ranges(torch.from_numpy(ranges))

    def _set_ranges(self, ranges: Tensor) -> None:
        self.ranges = ranges.to(device=self.device, dtype=self.dtype)
        self.cell_width = self._config["kappa"] * self.ranges
        self._width = np.ascontiguousarray(self.cell_width.cpu().numpy(), dtype=np.float64)
        self._dims = np.asarray(self.dims, dtype=np.int64) if self.sample_shape is not None else None

    def _score(self, embeddings: None, samples: np.ndarray) -> np.ndarray:
        n, b, h, _ = samples.shape
        if self.compiled:
            return histogram_kernel.store_entropy(samples, self._dims, self._config["integrate"], self._width, self._config["margin"], entropy_terms(b), parallel=self.parallel_offline)
        cells, top = grid_cells(self.points(samples).reshape(samples.shape[1], len(self.dims), n * h), self._width, self._config["margin"])
        return entropy_bits(new_cell_mask(cells, top), group=h) / h

    def _chunk_rows(self) -> int:
        b, h, _ = self.sample_shape
        return max(1, (self.kernel_chunk_points if self.compiled else self.chunk_points) // (b * h * len(self.dims)))

    def _tensors(self) -> dict[str, Tensor]:
        return {"ranges": self.ranges}

    def _load_tensors(self, tensors: Mapping[str, Tensor]) -> None:
        (ranges,) = self._take(tensors, "ranges")
        self._set_ranges(ranges)
