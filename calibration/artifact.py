"""Save / load a Threshold as a small, human-readable json artifact."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from calibration.errors import ThresholdFileError
from calibration.thresholds import THRESHOLD_KINDS, Threshold
from fiper.atomic import write_atomic

FORMAT = "fiper-threshold"
VERSION = 1
_REQUIRED = ("kind", "delta", "curve", "num_calibration", "guaranteed", "params")


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def threshold_to_dict(threshold: Threshold) -> dict[str, Any]:
    """JSON-ready dict: format tag, version, kind, delta, curve, M, guaranteed flag, params."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "kind": threshold.kind,
        "delta": threshold.delta,
        "num_calibration": threshold.num_calibration,
        "guaranteed": threshold.guaranteed,
        "curve": threshold.curve.tolist(),
        "params": {k: _plain(v) for k, v in threshold.params.items()},
    }


def threshold_from_dict(data: Any, source: str = "threshold data") -> Threshold:
    """Inverse of :func:`threshold_to_dict`; raises ThresholdFileError naming what is wrong."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ThresholdFileError(f"{source} is not a fiper threshold artifact (expected 'format': {FORMAT!r})")
    if data.get("version") != VERSION:
        raise ThresholdFileError(
            f"{source} has threshold artifact version {data.get('version')!r}; this fiper reads version {VERSION}"
        )
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise ThresholdFileError(f"{source} is missing field(s) {missing}; re-run calibration to rewrite it")
    if data["kind"] not in THRESHOLD_KINDS:
        raise ThresholdFileError(f"{source} has unknown threshold kind {data['kind']!r}")
    if not isinstance(data["params"], dict):
        raise ThresholdFileError(f"{source}: 'params' must be an object, got {type(data['params']).__name__}")
    params = {k: np.asarray(v) if isinstance(v, list) else v for k, v in data["params"].items()}
    try:
        return Threshold(
            kind=data["kind"],
            delta=data["delta"],
            curve=np.asarray(data["curve"], dtype=np.float64),
            num_calibration=data["num_calibration"],
            guaranteed=data["guaranteed"],
            params=params,
        )
    except (TypeError, ValueError) as err:
        raise ThresholdFileError(f"{source} holds an invalid threshold: {err}") from err


def save_threshold(threshold: Threshold, path: str | Path) -> Path:
    """Write the threshold to ``path`` (json); returns the path."""
    return write_atomic(path, json.dumps(threshold_to_dict(threshold), indent=1) + "\n")


def load_threshold(path: str | Path) -> Threshold:
    """Read a threshold written by :func:`save_threshold`."""
    path = Path(path)
    if not path.is_file():
        raise ThresholdFileError(f"threshold file {path} does not exist; fit and save a threshold first")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ThresholdFileError(f"threshold file {path} is not valid json ({err}); it may be truncated") from err
    return threshold_from_dict(data, source=f"threshold file {path}")
