"""Particle operations and the task-progress / stage tracker."""

import numpy as np
import pytest
import torch

from fiper.interventions import StageTracker
from fiper.interventions.particles import (
    effective_sample_size,
    rbf_repulsion,
    systematic_resample,
    unit_normalise,
)


def test_unit_normalise_per_particle():
    v = torch.randn(3, 5, 4, 2)
    v[0, 0] = 0
    n = unit_normalise(v).flatten(2).norm(dim=-1)
    assert torch.allclose(n[1:], torch.ones(2, 5)) and n[0, 0] == 0 and torch.allclose(n[0, 1:], torch.ones(4))


def test_effective_sample_size_bounds():
    assert torch.allclose(effective_sample_size(torch.zeros(2, 8)), torch.full((2,), 8.0))
    peaked = torch.tensor([[100.0, 0, 0, 0]])
    assert effective_sample_size(peaked).item() == pytest.approx(1.0)
    two = torch.log(torch.tensor([[0.5, 0.5, 1e-30, 1e-30]]))
    assert effective_sample_size(two).item() == pytest.approx(2.0)


def test_systematic_resampling_matches_the_weights():
    w = torch.tensor([0.5, 0.25, 0.125, 0.125, 0.0, 0.0, 0.0, 0.0])
    log_w = torch.log(w.clamp_min(1e-30)).expand(200, 8)
    idx = systematic_resample(log_w, torch.Generator().manual_seed(0))
    assert idx.shape == (200, 8) and idx.dtype == torch.int64
    counts = torch.stack([(idx == i).sum(1) for i in range(8)], dim=1).float()
    # Systematic resampling: every count is within one of B * w_i, and zero-weight particles vanish.
    assert torch.all((counts - 8 * w).abs() < 1.0 + 1e-6)
    assert torch.all(counts[:, 4:] == 0)
    assert torch.all(idx[:, 1:] >= idx[:, :-1])  # ancestors come out sorted


def test_rbf_repulsion_pushes_particles_apart():
    g = torch.Generator().manual_seed(1)
    y = torch.cat([torch.randn(1, 6, 4, generator=g) * 0.1, 1.0 + torch.randn(1, 6, 4, generator=g) * 0.1], dim=1)
    f = rbf_repulsion(y)
    assert f.norm(dim=-1).mean().item() == pytest.approx(1.0, rel=1e-5)
    # Each particle is pushed away from the centre of its own cluster (its nearest neighbours).
    for lo, hi in ((0, 6), (6, 12)):
        c = y[0, lo:hi].mean(0)
        assert ((f[0, lo:hi] * (y[0, lo:hi] - c)).sum(-1) > 0).float().mean() >= 5 / 6
    # A step along the force increases the mean pairwise distance.
    spread = lambda z: torch.cdist(z[0], z[0]).mean()
    assert spread(y + 0.05 * f) > spread(y)
    assert torch.all(rbf_repulsion(torch.zeros(2, 1, 3)) == 0)


def test_strength_decays_with_task_progress():
    t = StageTracker(1, min_strength=0.05)
    t.update(np.array([[-1.0]]))  # baseline
    strengths = [t.strength()[0]]
    for r in (-0.8, -0.5, -0.2, -0.05):
        t.update(np.array([[r]]))
        strengths.append(t.strength()[0])
    assert t.progress[0] == pytest.approx(0.95)
    assert strengths[0] > 0.99 and strengths[-1] == pytest.approx(0.05)
    assert all(a > b for a, b in zip(strengths, strengths[1:-1]))
    fixed = StageTracker(1, adaptive=False)
    fixed.update(np.array([[-1.0]]))
    fixed.update(np.array([[-0.01]]))
    assert fixed.strength()[0] == 1.0


def test_stage_hysteresis_advances_above_08_and_retries_below_06():
    t = StageTracker(2)
    t.update(np.array([[-1.0, -1.0]]))  # stage 0 baseline -1
    t.update(np.array([[-0.3, -1.0]]))  # progress 0.7: not enough to advance
    assert t.stage[0] == 0
    t.update(np.array([[-0.15, -1.0]]))  # progress 0.85 -> stage 1
    assert t.stage[0] == 1 and t.progress[0] == 0.0
    t.update(np.array([[-0.35, -2.0]]))  # stage-0 progress 0.65: inside the band, stay
    assert t.stage[0] == 1
    t.update(np.array([[-0.45, -1.0]]))  # stage-0 progress 0.55 < 0.6: retry stage 0
    assert t.stage[0] == 0 and t.progress[0] == pytest.approx(0.55)
    t.update(np.array([[-0.25, -1.0]]))  # 0.75: still below 0.8, no flip back yet
    assert t.stage[0] == 0
    t.update(np.array([[-0.1, -1.0]]))
    assert t.stage[0] == 1


def test_satisfied_baseline_rearms_on_a_violation():
    t = StageTracker(1)
    t.update(np.array([[0.0]]))
    assert t.progress[0] == 1.0
    t.update(np.array([[-0.5]]))  # the constraint is now violated: new baseline, full strength
    assert t.progress[0] == 0.0 and t.strength()[0] > 0.99
    with pytest.raises(ValueError, match="retry_below"):
        StageTracker(1, advance_at=0.5, retry_below=0.6)
