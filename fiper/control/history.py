"""Observation history for a policy that conditions on the last ``n_obs_steps`` observations."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from fiper.scores.inputs import host_array


class ObsHistory:
    """Keeps the last ``n_obs_steps`` observations; at an episode start it repeats the first one.

    The padding matches training (fiper.storage.TrainingWindows), so the first decision of an
    episode sees the same kind of history the policy was trained on.
    """

    def __init__(self, keys: list[str], n_obs_steps: int):
        self.keys, self.n_obs_steps = list(keys), int(n_obs_steps)
        self._frames: deque[dict[str, np.ndarray]] = deque(maxlen=self.n_obs_steps)

    def reset(self) -> None:
        self._frames.clear()

    def push(self, obs: Mapping[str, Any]) -> None:
        missing = [k for k in self.keys if k not in obs]
        if missing:
            raise KeyError(f"observation lacks {missing} (has {sorted(obs)}); the policy reads {self.keys}")
        frame = {k: host_array(obs[k]) for k in self.keys}
        if not self._frames:
            self._frames.extend([frame] * (self.n_obs_steps - 1))
        self._frames.append(frame)

    def tensors(self, device: torch.device) -> dict[str, torch.Tensor]:
        """{key: (1, n_obs_steps, *shape)} on ``device``."""
        if not self._frames:
            raise RuntimeError("no observation pushed yet: call push(obs) first")
        return {k: torch.as_tensor(np.stack([f[k] for f in self._frames])[None], device=device) for k in self.keys}
