"""fiper: runtime failure prediction and intervention for generative robot policies."""

from fiper.protocol import GenerativePolicy, Guidance, GuidanceResult, GuidanceState
from fiper.storage import EpisodeStore, StoreError

__all__ = [
    "EpisodeStore",
    "GenerativePolicy",
    "Guidance",
    "GuidanceResult",
    "GuidanceState",
    "StoreError",
]
