"""Save a fitted monitor to one directory (safetensors + json) and load it without training data.

    <dir>/monitor.json        identity, spec (MonitorSpec), fitted score configs, thresholds
    <dir>/scores.safetensors  every score's tensors, keyed '<score name>/<tensor name>'
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from calibration import threshold_from_dict, threshold_to_dict
from fiper.monitor.identity import PolicyIdentity
from fiper.monitor.monitor import FailureMonitor
from fiper.scores.registry import score_from_state

FORMAT, VERSION = "fiper-monitor", 1
CONFIG_FILE, TENSOR_FILE = "monitor.json", "scores.safetensors"


def save_monitor(monitor: FailureMonitor, directory: str | os.PathLike, *, extra: dict[str, Any] | None = None) -> Path:
    """Write the monitor (scores, windows, thresholds if calibrated) into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors, score_configs = {}, {}
    for name, score in monitor.scores.items():
        score_tensors, score_configs[name] = score.state()
        tensors.update({f"{name}/{key}": value for key, value in score_tensors.items()})
    config = {
        "format": FORMAT,
        "version": VERSION,
        "identity": monitor.identity.as_dict(),
        "spec": monitor.spec.as_dict(),
        "rule": monitor.rule,
        "windows": monitor.windows,
        "scores": score_configs,
        "thresholds": {n: threshold_to_dict(t) for n, t in monitor.thresholds.items()} if monitor.calibrated else None,
        "extra": extra or {},
    }
    tmp = directory / (TENSOR_FILE + ".tmp")
    save_file(tensors, str(tmp))
    os.replace(tmp, directory / TENSOR_FILE)
    tmp = directory / (CONFIG_FILE + ".tmp")
    tmp.write_text(json.dumps(config, indent=2))
    os.replace(tmp, directory / CONFIG_FILE)
    return directory


def read_monitor_config(directory: str | os.PathLike) -> dict[str, Any]:
    directory = Path(directory)
    path = directory / CONFIG_FILE
    if not path.exists():
        raise FileNotFoundError(f"no fitted monitor at {directory} ({CONFIG_FILE} missing); fit one with `python -m launch.fit out={directory}`")
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid json ({err}); re-create it with `python -m launch.fit`") from err
    if config.get("format") != FORMAT:
        raise ValueError(f"{path} is not a fiper monitor (format={config.get('format')!r})")
    if int(config.get("version", 0)) > VERSION:
        raise ValueError(f"{path} has monitor format version {config['version']}, newer than this fiper reads ({VERSION}); upgrade fiper")
    return config


def load_monitor(directory: str | os.PathLike, *, policy: Any = None, device: str | torch.device = "cpu") -> FailureMonitor:
    """Load a saved monitor; with ``policy`` given, refuse one fitted for other shapes."""
    directory = Path(directory)
    config = read_monitor_config(directory)
    identity = PolicyIdentity(**config["identity"])
    if policy is not None:
        identity.check_matches(PolicyIdentity.of(policy, identity.num_samples))
        device = getattr(policy, "device", device)
    tensor_path = directory / TENSOR_FILE
    if not tensor_path.exists():
        raise FileNotFoundError(f"{tensor_path} is missing: the monitor directory is incomplete; re-run `python -m launch.fit`")
    tensors = load_file(str(tensor_path))
    scores = {}
    for name, score_config in config["scores"].items():
        prefix = f"{name}/"
        own = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        scores[name] = score_from_state(own, score_config, device=device)
    thresholds = config.get("thresholds")
    if thresholds is not None:
        thresholds = {n: threshold_from_dict(t, source=f"{directory}/{CONFIG_FILE}:{n}") for n, t in thresholds.items()}
    spec = config.get("spec") or {}  # files written before the spec was saved: constant, separate
    return FailureMonitor(scores, identity, windows=config["windows"], rule=config["rule"], thresholds=thresholds,
                          threshold=spec.get("threshold", "constant"), joint=bool(spec.get("joint", False)))
