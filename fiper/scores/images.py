"""What counts as a camera image among a decision's observations, and the fixed pooling the scores that read images
apply: one rule for every score, for the evaluation that looks for camera keys and for what the control loop records."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: An image's height and width are both at least this many pixels; smaller arrays (keypoints, an (n, d) state, a
#: taxel grid) are read whole, as the policies read them, never averaged into blocks that mix unrelated entries.
IMAGE_MIN_SIDE = 16
#: An image's channel axis (grey, RGB, RGBA, RGB-D) holds at most this many entries, first or last.
IMAGE_MAX_CHANNELS = 4

#: The most numbers per step an array that is not an image may hold to be read whole by a score, or recorded by default
#: when the policy does not read it (a Mahalanobis covariance grows with its square; a store with every step).
MAX_WHOLE = 4096

IMAGE_RULE = (f"height and width of at least {IMAGE_MIN_SIDE} pixels, with no channel axis or one of at most "
              f"{IMAGE_MAX_CHANNELS} first or last")


def image_axes(shape: Sequence[int]) -> str | None:
    """The layout of one step's camera image ("HW", "HWC" or "CHW"), or None for anything that is not an image."""
    shape = tuple(int(s) for s in shape)
    if len(shape) == 2 and min(shape) >= IMAGE_MIN_SIDE:
        return "HW"
    if len(shape) == 3 and shape[-1] <= IMAGE_MAX_CHANNELS and min(shape[:2]) >= IMAGE_MIN_SIDE:
        return "HWC"
    if len(shape) == 3 and shape[0] <= IMAGE_MAX_CHANNELS and min(shape[1:]) >= IMAGE_MIN_SIDE:
        return "CHW"
    return None


def channels_first(rows: np.ndarray) -> np.ndarray:
    """Image rows (n, *image) as (n, C, H, W); a grey image gets one channel."""
    axes = image_axes(rows.shape[1:])
    if axes is None:
        raise ValueError(f"per-step shape {tuple(rows.shape[1:])} is not an image ({IMAGE_RULE})")
    return {"HW": lambda x: x[:, None], "HWC": lambda x: np.moveaxis(x, -1, 1), "CHW": lambda x: x}[axes](rows)


def pool_image(x: np.ndarray, size: int, *, fill: bool = False) -> np.ndarray:
    """Block means of the last two axes, ``size`` blocks along each: (..., H, W) -> (..., size, size). An axis shorter
    than ``size`` keeps its pixels (``fill=False``) or repeats them up to ``size`` (``fill=True``)."""
    out = x
    for axis in (x.ndim - 2, x.ndim - 1):
        length = out.shape[axis]
        if length < size and fill:
            out = np.take(out, (np.arange(size) * length) // size, axis=axis)
            continue
        blocks = min(size, length)
        edges = (np.arange(blocks) * length) // blocks
        sums = np.add.reduceat(out, edges, axis=axis)
        counts = np.diff(np.append(edges, length)).reshape([-1 if a == axis else 1 for a in range(out.ndim)])
        out = sums / counts
    return out
