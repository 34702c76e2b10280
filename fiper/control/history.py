"""Observation history for a policy that conditions on the last ``n_obs_steps`` observations."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from fiper.env_io import observation_dict
from fiper.scores.inputs import host_array


class ObsHistory:
    """Keeps the last ``n_obs_steps`` observations; at an episode start it repeats the first one.

    The padding matches training (fiper.storage.TrainingWindows), so the first decision of an
    episode sees the same kind of history the policy was trained on. ``push`` refuses (and does
    not store) an observation the policy cannot read: a missing key, a per-step shape other than
    ``shapes`` (when given), a non-numeric dtype, or a NaN / inf value. It keeps copies, so a driver that
    writes each observation into the same buffers does not rewrite the frames already kept.
    """

    def __init__(self, keys: list[str], n_obs_steps: int, shapes: Mapping[str, tuple[int, ...]] | None = None):
        self.keys, self.n_obs_steps = list(keys), int(n_obs_steps)
        self.shapes = {k: tuple(int(d) for d in s) for k, s in shapes.items()} if shapes is not None else None
        self._frames: deque[dict[str, np.ndarray]] = deque(maxlen=self.n_obs_steps)

    def reset(self) -> None:
        self._frames.clear()

    def frame(self, obs: Any, *, owned: bool = False) -> dict[str, np.ndarray]:
        """The policy's keys of ``obs`` (a dict, or one array read as 'obs') as checked host arrays of their own
        (``owned``: ``obs`` holds copies already, e.g. a :func:`snapshot`, which are read without another copy).

        KeyError for a missing key; ValueError for a wrong shape, a non-numeric dtype or a
        non-finite value; TypeError for an observation with no keys (a tuple).
        """
        obs = observation_dict(obs)
        missing = [k for k in self.keys if k not in obs]
        if missing:
            raise KeyError(f"observation lacks {missing} (has {sorted(map(str, obs))}); the policy reads {self.keys}: "
                           "pass a dict with these keys (or one array if the policy reads 'obs')")
        frame = {k: _readable(k, obs[k], copy=not owned) for k in self.keys}
        for k, x in frame.items():
            if x.dtype.kind not in "fiub":
                raise ValueError(f"obs[{k!r}] has dtype {x.dtype}; the policy reads real numbers: pass a numeric array")
            if self.shapes is not None and x.shape != self.shapes[k]:
                raise ValueError(f"obs[{k!r}] has shape {x.shape}; the policy reads per-step shape {self.shapes[k]}: "
                                 "pass one step's observation, laid out as in training")
            if x.dtype.kind == "f" and not np.isfinite(x).all():
                raise ValueError(f"obs[{k!r}] holds {int((~np.isfinite(x)).sum())} NaN or inf values: the policy cannot "
                                 "act on a non-finite observation; check the sensor or the state estimator")
        return frame

    def push(self, obs: Any, *, owned: bool = False) -> None:
        """Check ``obs`` (see :meth:`frame`) and append it; a refused observation leaves the history as it was."""
        frame = self.frame(obs, owned=owned)
        if not self._frames:
            self._frames.extend([frame] * (self.n_obs_steps - 1))
        self._frames.append(frame)

    def tensors(self, device: torch.device) -> dict[str, torch.Tensor]:
        """{key: (1, n_obs_steps, *shape)} on ``device``."""
        if not self._frames:
            raise RuntimeError("no observation pushed yet: call push(obs) first")
        return {k: torch.as_tensor(np.stack([f[k] for f in self._frames])[None], device=device) for k in self.keys}


def _readable(key: str, value: Any, copy: bool = True) -> np.ndarray:
    """``obs[key]`` on the host (with ``copy``, never a view of the caller's buffer), or a ValueError naming the key."""
    try:
        return np.array(host_array(value), copy=True) if copy else host_array(value)
    except Exception as err:
        raise ValueError(f"obs[{key!r}] cannot be read to the host ({type(err).__name__}: {err}): pass a numpy array or a "
                         "tensor that holds data") from err


def snapshot(obs: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of each array or tensor of ``obs`` (tensors stay on their device): a driver that writes the next
    observation into the same buffers, a NaN included, must not change the last valid one the fallback reads."""
    return {k: v.detach().clone() if isinstance(v, torch.Tensor) else v.copy() if isinstance(v, np.ndarray) else v
            for k, v in obs.items()}
