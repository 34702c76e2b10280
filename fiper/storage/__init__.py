"""Zarr storage of demonstrations and monitored rollouts (diffusion_policy layout, format 2)."""

from fiper.storage.errors import DamagedStoreError, StoreError
from fiper.storage.store import EpisodeStore
from fiper.storage.windows import TrainingWindows

__all__ = ["DamagedStoreError", "EpisodeStore", "StoreError", "TrainingWindows"]
