"""Save a fitted monitor to one directory (safetensors + json) and load it without training data.

    <dir>/monitor.json        identity (shapes, policy fingerprint), spec (MonitorSpec), fitted score
                              configs, thresholds, fit_data (the store and episodes the scores were fitted on)
    <dir>/scores.safetensors  every score's tensors, keyed '<score name>/<tensor name>'

Every damaged or foreign file raises MonitorFileError naming the file, what is wrong and the fix. A directory's
monitor is replaced only by the monitor loaded from it (recalibrated), else only with ``overwrite=True``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from calibration import ThresholdFileError, threshold_from_dict, threshold_to_dict
from fiper.atomic import replacing, write_atomic
from fiper.monitor.identity import PolicyIdentity
from fiper.monitor.monitor import FailureMonitor
from fiper.scores.registry import score_class, score_from_state, score_from_state_name, score_id

FORMAT, VERSION = "fiper-monitor", 1
CONFIG_FILE, TENSOR_FILE = "monitor.json", "scores.safetensors"
REQUIRED_KEYS = ("identity", "rule", "windows", "scores")
FITTED = (*REQUIRED_KEYS, "fit_data")  # what launch.fit writes and launch.calibrate keeps (it sets thresholds, spec, extra)
REFIT = ("re-create the directory with `python -m launch.fit out=<dir> overwrite=true` (then `python -m launch.calibrate`), "
         "or restore it from a copy")


class MonitorFileError(ValueError):
    """A monitor directory's files are missing, truncated, garbled or foreign."""


def _own_score_class(score_config: dict) -> str | None:
    """'module:Class' of a score defined outside fiper that ``score_config`` names, else None."""
    try:
        cls = score_class(score_from_state_name(score_config))
    except (KeyError, ValueError, TypeError):
        return None
    module = cls.__module__
    return None if module == "fiper" or module.startswith("fiper.") else f"{module}:{cls.__qualname__}"


def _error(path: Path, problem: str, fix: str = REFIT) -> MonitorFileError:
    return MonitorFileError(f"{path}: {problem}. Fix: {fix}")


def _fitted_digest(config: dict[str, Any], tensors_sha256: str | None) -> str:
    """sha256 of a saved monitor's fitted part, which calibration leaves as it is: its FITTED entries and score tensors."""
    return hashlib.sha256(json.dumps([{k: config.get(k) for k in FITTED}, tensors_sha256], sort_keys=True).encode()).hexdigest()


def check_replaceable(directory: str | os.PathLike, monitor: FailureMonitor | None = None, *, overwrite: bool = False) -> None:
    """Refuse (FileExistsError) to replace the monitor ``directory`` holds with another: only the monitor loaded from (or
    saved to) it, unchanged there since, is saved back (recalibrated); anything else needs ``overwrite=True``."""
    directory = Path(directory)
    if overwrite or not (directory / CONFIG_FILE).exists():
        return
    tensors = directory / TENSOR_FILE
    try:
        config = read_monitor_config(directory)
        held = _fitted_digest(config, _sha256(tensors) if tensors.exists() else None)
        state = "calibrated" if config.get("thresholds") is not None else "fitted, not calibrated"
    except (MonitorFileError, OSError) as err:
        held, state = None, f"{CONFIG_FILE} unreadable: {err}"
    source, digest = getattr(monitor, "loaded_from", None) or (None, None)
    here = source == str(directory.resolve())
    if here and digest == held:
        return
    changed = ", changed since this monitor was loaded from it or saved there" if here else ""
    raise FileExistsError(
        f"{directory} already holds a monitor ({state}{changed}); saving another there would replace it, and a copy deployed "
        "from it would no longer match its source. Fix: save to a new directory (out=<new dir>), or pass overwrite=True "
        "(on the command line: overwrite=true) to replace it")


def save_monitor(monitor: FailureMonitor, directory: str | os.PathLike, *, extra: dict[str, Any] | None = None,
                 fit_data: dict[str, Any] | None = None, overwrite: bool = False) -> Path:
    """Write the monitor (scores, windows, thresholds if calibrated) into ``directory``; another monitor there is
    refused unless ``overwrite`` (``check_replaceable``).

    ``fit_data`` (fiper.monitor.independence.fit_record) names the episodes the scores were fitted on,
    so calibration can refuse the same episodes; by default the monitor's own ``fit_data`` (set by
    load_monitor) is kept."""
    directory = Path(directory)
    check_replaceable(directory, monitor, overwrite=overwrite)
    directory.mkdir(parents=True, exist_ok=True)
    tensors, score_configs = {}, {}
    for name, score in monitor.scores.items():
        score_tensors, score_configs[name] = score.state()
        if score_id(type(score)) != score_configs[name].get("name"):  # defined outside fiper: how load_monitor imports it
            score_configs[name] = {**score_configs[name], "class": score_id(type(score))}
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
        "fit_data": fit_data if fit_data is not None else getattr(monitor, "fit_data", None),
    }
    with replacing(directory / TENSOR_FILE) as tmp:
        save_file(tensors, str(tmp))
        config["tensors_sha256"] = _sha256(tmp)  # safetensors keeps no checksum: a flipped bit would load as another value
    write_atomic(directory / CONFIG_FILE, json.dumps(config, indent=2))  # last: the sha256 ties the tensors to it
    monitor.loaded_from = (str(directory.resolve()), _fitted_digest(json.loads(json.dumps(config)), config["tensors_sha256"]))
    return directory


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_monitor_config(directory: str | os.PathLike) -> dict[str, Any]:
    directory = Path(directory)
    path = directory / CONFIG_FILE
    if not path.exists():
        raise FileNotFoundError(f"no fitted monitor at {directory} ({CONFIG_FILE} missing); fit one with `python -m launch.fit out={directory}`")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise _error(path, f"not valid json ({err}); the file is truncated or garbled") from err
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise _error(path, f"not a fiper monitor (format={config.get('format') if isinstance(config, dict) else None!r})",
                     "point monitor_dir= at a directory written by `python -m launch.fit`")
    try:
        version = int(config.get("version", 0))
    except (TypeError, ValueError):
        raise _error(path, f"its version {config.get('version')!r} is not a number") from None
    if version > VERSION:
        raise _error(path, f"monitor format version {version} is newer than this fiper reads ({VERSION})", "upgrade fiper")
    missing = [k for k in REQUIRED_KEYS if not isinstance(config.get(k), dict if k != "rule" else str)]
    if missing:
        raise _error(path, f"missing or malformed entries {missing}")
    return config


def load_monitor(directory: str | os.PathLike, *, policy: Any = None, device: str | torch.device = "cpu",
                 allow_other_policy: bool = False) -> FailureMonitor:
    """Load a saved monitor; with ``policy`` given, refuse one fitted for other shapes or for another
    policy's weights (``allow_other_policy=True`` loads it anyway; files without a fingerprint warn)."""
    directory = Path(directory)
    config = read_monitor_config(directory)
    path = directory / CONFIG_FILE
    try:
        identity = PolicyIdentity(**config["identity"])
    except TypeError as err:
        raise _error(path, f"its identity entry is malformed ({err})") from err
    if policy is not None:
        identity.check_matches(PolicyIdentity.of(policy, identity.num_samples), allow_other_policy=allow_other_policy,
                               source=f"the monitor in {directory}")
        device = getattr(policy, "device", device)
    tensor_path = directory / TENSOR_FILE
    if not tensor_path.exists():
        raise FileNotFoundError(f"{tensor_path} is missing: the monitor directory is incomplete; re-run `python -m launch.fit "
                                f"out={directory} overwrite=true`")
    recorded, held = config.get("tensors_sha256"), _sha256(tensor_path)  # recorded: absent in older files
    if recorded is not None and held != recorded:
        raise _error(tensor_path, f"its bytes differ from the sha256 recorded in {CONFIG_FILE} when both were saved (changed or "
                     "damaged since, or one of the two files was replaced)")
    try:
        tensors = load_file(str(tensor_path))
    except (SafetensorError, OSError, ValueError) as err:
        raise _error(tensor_path, f"the score tensors do not load ({type(err).__name__}: {err}); the file is truncated or garbled") from err
    scores = {}
    for name, score_config in config["scores"].items():
        prefix = f"{name}/"
        own = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}  # none for scores without parameters (stac, elapsed)
        try:
            scores[name] = score_from_state(own, score_config, device=device)
        except KeyError as err:  # a score class this process cannot find: the files themselves are fine
            raise _error(directory, f"score {name!r} names a score class this process cannot find ({err.args[0]})",
                         "make the module that defines it importable (PYTHONPATH), or register the class "
                         "(fiper.scores.register_score) before loading") from err
        except (TypeError, ValueError, RuntimeError) as err:
            fix = REFIT
            if (owner := _own_score_class(score_config)) is not None:  # the refusal comes from one's own score's code
                fix = f"fix the score class {owner} where its from_state or __init__ refuses the saved state (above), or {REFIT}"
            raise _error(directory, f"score {name!r} does not load from {TENSOR_FILE} and {CONFIG_FILE} ({type(err).__name__}: {err})",
                         fix) from err
    thresholds = config.get("thresholds")
    if thresholds is not None:
        try:
            thresholds = {n: threshold_from_dict(t, source=f"{path}:{n}") for n, t in thresholds.items()}
        except (ThresholdFileError, AttributeError) as err:
            raise _error(path, f"a threshold entry is damaged ({err})", "re-run `python -m launch.calibrate` on this directory") from err
    spec = config.get("spec") or _spec_from_thresholds(thresholds)
    monitor = FailureMonitor(scores, identity, windows=config["windows"], rule=config["rule"], thresholds=thresholds,
                             threshold_type=spec.get("threshold_type", "constant"), joint=bool(spec.get("joint", False)))
    monitor.fit_data = config.get("fit_data")  # kept by save_monitor, checked by launch.calibrate
    monitor.loaded_from = (str(directory.resolve()), _fitted_digest(config, held))  # save_monitor writes it back here only
    return monitor


def _spec_from_thresholds(thresholds: dict[str, Any] | None) -> dict[str, Any]:
    """A file written before the spec was saved: its thresholds' kind and joint flag, else constant and separate."""
    kinds = {t.kind for t in (thresholds or {}).values()}
    joint = any(bool(t.params.get("joint")) for t in (thresholds or {}).values())
    return {"threshold_type": kinds.pop() if len(kinds) == 1 else "constant", "joint": joint}
