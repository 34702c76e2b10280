"""Fixtures of the offline-evaluation tests: synthetic rollout stores evaluated once per session."""

from __future__ import annotations

import pytest
import torch
from evaluation_helpers import SIZES, small_config

from fiper.evaluation import evaluate_rollouts, write_outputs
from benchmarks.synthetic_stores import write_synthetic_store


@pytest.fixture(scope="session")
def stores(tmp_path_factory):
    """Two stores of one task (two 'runs') with ID/OOD successes and failures."""
    root = tmp_path_factory.mktemp("runs")
    for seed in (0, 1):
        write_synthetic_store(root / f"run{seed}" / "rollouts.zarr", seed=seed, **SIZES)
    return root


@pytest.fixture(scope="session")
def evaluated(stores, tmp_path_factory):
    """Every method evaluated on both runs merged by a glob; outputs written."""
    torch.set_num_threads(1)
    result = evaluate_rollouts(str(stores / "run*" / "rollouts.zarr"), small_config())
    out = tmp_path_factory.mktemp("out")
    paths = write_outputs(result, out)
    return result, out, paths
