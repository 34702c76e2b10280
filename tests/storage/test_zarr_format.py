"""A store another recorder wrote with zarr-python 3's default format: named as such, never called damaged."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from fiper.evaluation import expand_stores, load_rollouts
from fiper.storage import DamagedStoreError, EpisodeStore, StoreError


def _format3_store(path):
    """The layout of docs/rollout_format.md, written with zarr.open_group's default format (3)."""
    root = zarr.open_group(str(path), mode="w")
    root.attrs["task"] = "own"
    root.create_array("data/action", data=np.zeros((6, 2), np.float32))
    root.create_array("decisions/embedding", data=np.zeros((3, 4), np.float32))
    root.create_array("meta/success", data=np.array([True, False]))
    root.create_array("meta/decision_ends", data=np.array([1, 3]))
    root.create_array("meta/episode_ends", data=np.array([2, 6]))
    return path


def test_a_format_3_store_is_named_with_the_fix_not_as_damaged(tmp_path):
    path = _format3_store(tmp_path / "own.zarr")
    with pytest.raises(StoreError, match=r"zarr format 3 group; fiper reads format 2.*zarr_format=2") as err:
        EpisodeStore.open(path)
    assert not isinstance(err.value, DamagedStoreError)


def test_the_evaluation_finds_a_format_3_store_and_says_its_format(tmp_path):
    path = _format3_store(tmp_path / "stores" / "own.zarr")
    assert expand_stores(str(tmp_path / "stores")) == [path.resolve()]
    assert expand_stores(str(path)) == [path.resolve()]
    with pytest.raises(StoreError, match="zarr format 3"):
        load_rollouts(str(path))
