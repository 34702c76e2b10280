"""A monitor configuration chosen by an offline evaluation, as a yaml file the launchers read.

``launch.evaluate`` writes one per task (``monitor_<task>.yaml``): ``monitor``, the chosen
configuration as a MonitorSpec (scores with their hyper-parameters, windows, rule, threshold type,
joint flag: what ``launch.fit monitor_file=`` fits and ``launch.calibrate`` calibrates), and
``evaluated``, its test metrics (for the reader choosing δ). Fitting and calibrating from it
deploys the configuration that was measured. Files of version 1 (threshold type and joint flag in
a separate ``threshold`` section) still read.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from fiper.atomic import write_atomic
from fiper.monitor.spec import MonitorSpec

FORMAT, VERSION = "fiper-monitor-choice", 2


def check_monitor_file(document: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Validate a monitor file; returns it with ``spec`` (the MonitorSpec). Errors name the file and the field."""
    def fail(what: str) -> ValueError:
        return ValueError(f"{source}: {what}; write the file again with `python -m launch.evaluate` (it writes monitor_<task>.yaml)")

    if not isinstance(document, Mapping) or document.get("format") != FORMAT:
        raise fail(f"not a fiper monitor file (format={document.get('format') if isinstance(document, Mapping) else None!r}, expected {FORMAT!r})")
    version = document.get("version", 0)
    if not isinstance(version, int) or version > VERSION:
        raise ValueError(f"{source}: monitor file version {version!r} is newer than this fiper reads ({VERSION}); upgrade fiper")
    monitor = document.get("monitor")
    if not isinstance(monitor, Mapping):
        raise fail("needs the section 'monitor' (scores, windows, rule, threshold_type, joint)")
    monitor = dict(monitor)
    if version < 2:  # version 1: threshold type and joint flag lived in their own section
        threshold = document.get("threshold")
        if not isinstance(threshold, Mapping):
            raise fail("a version 1 file needs the section 'threshold' (kind, joint)")
        monitor.update(threshold_type=threshold.get("kind"), joint=threshold.get("joint"))
    try:
        spec = MonitorSpec.of(monitor, source=f"{source}: monitor")
    except ValueError as err:
        raise fail(str(err).removeprefix(f"{source}: ")) from None
    evaluated = document.get("evaluated") or {}  # what the evaluation measured; a file written by hand may leave it out
    if not isinstance(evaluated, Mapping):
        raise fail(f"the section 'evaluated' must map names to what was measured, got {type(evaluated).__name__}")
    return {**dict(document), "evaluated": dict(evaluated), "spec": spec}


def write_monitor_file(spec: MonitorSpec, evaluated: Mapping[str, Any], path: str | os.PathLike, *, header: str = "") -> Path:
    """Write the chosen ``spec`` and its ``evaluated`` metrics as yaml, ``header`` lines as comments above it."""
    path = Path(path)
    document = {"format": FORMAT, "version": VERSION, "monitor": MonitorSpec.of(spec).as_dict(), "evaluated": dict(evaluated)}
    check_monitor_file(document, str(path))
    comments = "".join(f"# {line}\n".replace("# \n", "#\n") for line in header.splitlines())
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, comments + yaml.safe_dump(document, sort_keys=False, default_flow_style=None, width=120))
    return path


def read_monitor_file(path: str | os.PathLike) -> dict[str, Any]:
    """Load and validate a monitor document written by ``write_monitor_file``: the document with ``spec`` added."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no monitor document at {path}; `python -m launch.evaluate rollouts=... out=<dir>` writes "
                                "<dir>/monitor_<task>.yaml (give its path as monitor_file=)")
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{path} is not valid yaml ({err}); write it again with `python -m launch.evaluate`") from err
    return check_monitor_file(document, str(path))
