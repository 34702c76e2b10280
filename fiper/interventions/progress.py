"""Task progress across decisions: guidance strength that decays as the reward improves, and stages.

For the reward R_t of the executed chunk under the current stage's program and R_base, that
stage's reward when it began (rewards are <= 0, 0 = satisfied):

    progress p_t = clip(1 - R_t / R_base, 0, 1)
    strength s_t = max(min_strength, sigmoid(sharpness * (midpoint - p_t)))

so guidance is ~full at the start of a stage and fades as the task nears completion, leaving the
base policy to finish fine manipulation. Stages switch by a Schmitt trigger: advance when
p_t >= advance_at (0.8), go back to the previous stage when its progress, measured on the current
chunk, falls below retry_below (0.6), e.g. a grasp was lost. The gap between the two thresholds
keeps the stage from flip-flopping.
"""

from __future__ import annotations

import numpy as np


class StageTracker:
    """Per-environment stage index, baseline rewards and progress for N parallel rollouts."""

    def __init__(self, n_stages: int = 1, *, advance_at: float = 0.8, retry_below: float = 0.6,
                 adaptive: bool = True, sharpness: float = 10.0, midpoint: float = 0.5,
                 min_strength: float = 0.1, satisfied_tol: float = 1e-6):
        if int(n_stages) < 1:
            raise ValueError(f"n_stages={n_stages!r} is invalid: need at least one stage")
        if not 0.0 <= retry_below < advance_at <= 1.0:
            raise ValueError(
                f"retry_below={retry_below} and advance_at={advance_at} are invalid: need 0 <= retry_below < advance_at <= 1"
            )
        if not 0.0 <= min_strength <= 1.0:
            raise ValueError(f"min_strength={min_strength!r} is invalid: must lie in [0, 1]")
        self.n_stages = int(n_stages)
        self.advance_at, self.retry_below = float(advance_at), float(retry_below)
        self.adaptive, self.sharpness, self.midpoint = bool(adaptive), float(sharpness), float(midpoint)
        self.min_strength, self.tol = float(min_strength), float(satisfied_tol)
        self.reset(1)

    def reset(self, n: int = 1) -> None:
        """Start over for ``n`` environments: stage 0, no baseline, zero progress."""
        self.stage = np.zeros(n, dtype=np.int64)
        self.base = np.full((n, self.n_stages), np.nan)
        self.progress = np.zeros(n)

    def ensure(self, n: int) -> None:
        """Reset if the number of environments changed."""
        if len(self.stage) != n:
            self.reset(n)

    def _progress(self, reward: np.ndarray, base: np.ndarray) -> np.ndarray:
        satisfied = base >= -self.tol
        ratio = np.divide(reward, base, out=np.ones_like(reward), where=~satisfied)
        return np.where(satisfied, (reward >= -self.tol).astype(float), np.clip(1.0 - ratio, 0.0, 1.0))

    def strength(self) -> np.ndarray:
        """Guidance strength per environment, (N,), in [min_strength, 1]."""
        if not self.adaptive:
            return np.ones_like(self.progress)
        s = 1.0 / (1.0 + np.exp(-self.sharpness * (self.midpoint - self.progress)))
        return np.maximum(self.min_strength, s)

    def update(self, stage_rewards: np.ndarray) -> None:
        """Record the executed chunks' rewards under every stage program, (N, n_stages)."""
        r = np.asarray(stage_rewards, dtype=np.float64).reshape(-1, self.n_stages)
        self.ensure(len(r))
        rows = np.arange(len(r))
        cur = self.stage
        reward = r[rows, cur]
        base = self.base[rows, cur]
        # A new stage takes its first reward as baseline; a satisfied baseline re-arms on a violation.
        rebase = np.isnan(base) | ((base >= -self.tol) & (reward < -self.tol))
        base = np.where(rebase, reward, base)
        self.base[rows, cur] = base
        p = self._progress(reward, base)
        advance = (p >= self.advance_at) & (cur < self.n_stages - 1)
        prev = np.maximum(cur - 1, 0)
        prev_base = self.base[rows, prev]
        p_prev = self._progress(r[rows, prev], np.nan_to_num(prev_base, nan=-1.0))
        retry = (cur > 0) & ~advance & ~np.isnan(prev_base) & (p_prev < self.retry_below)
        self.stage = np.where(advance, cur + 1, np.where(retry, prev, cur))
        self.base[rows[advance], self.stage[advance]] = np.nan
        self.progress = np.where(advance, 0.0, np.where(retry, p_prev, p))
