"""A monitor configuration chosen by an offline evaluation, as a yaml file the launchers read.

``launch.evaluate`` writes one per task (``monitor_<task>.yaml``): the scores with their
hyper-parameters, windows and rule of the chosen configuration (``monitor``, what ``launch.fit``
fits), the threshold type and joint flag it was validated with (``threshold``, what
``launch.calibrate`` uses unless told otherwise), and its test metrics (``evaluated``, for the
reader choosing δ). Fitting and calibrating from it deploys the configuration that was measured.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from calibration import THRESHOLD_KINDS
from fiper.aggregation import RULES

FORMAT, VERSION = "fiper-monitor-choice", 1


def check_choice(choice: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Validate a choice document; errors name the file and the broken field."""
    def fail(what: str) -> ValueError:
        return ValueError(f"{source}: {what}; write the file again with `python -m launch.evaluate` (it writes monitor_<task>.yaml)")

    if not isinstance(choice, Mapping) or choice.get("format") != FORMAT:
        raise fail(f"not a fiper monitor choice (format={choice.get('format') if isinstance(choice, Mapping) else None!r}, expected {FORMAT!r})")
    if int(choice.get("version", 0)) > VERSION:
        raise ValueError(f"{source}: monitor choice version {choice['version']} is newer than this fiper reads ({VERSION}); upgrade fiper")
    monitor, threshold = choice.get("monitor"), choice.get("threshold")
    if not isinstance(monitor, Mapping) or not isinstance(threshold, Mapping):
        raise fail("needs the sections 'monitor' (rule, windows, scores) and 'threshold' (kind, joint)")
    scores, windows, rule = monitor.get("scores"), monitor.get("windows"), monitor.get("rule")
    if not isinstance(scores, Mapping) or not scores or not all(isinstance(s, Mapping) and "score" in s for s in scores.values()):
        raise fail("monitor.scores must map each indicator name to {score: <registry name>, ...parameters}")
    if not isinstance(windows, Mapping) or set(windows) != set(scores):
        raise fail(f"monitor.windows must give one window per score {sorted(scores)}, got {windows!r}")
    if not all(isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in windows.values()):
        raise fail(f"monitor.windows must be positive numbers of decisions, got {dict(windows)!r}")
    if rule not in RULES or (rule == "single") != (len(scores) == 1):
        raise fail(f"monitor.rule {rule!r} does not fit {len(scores)} score(s); expected one of {RULES} ('single' for one score)")
    if threshold.get("kind") not in THRESHOLD_KINDS:
        raise fail(f"threshold.kind {threshold.get('kind')!r} unknown; expected one of {sorted(THRESHOLD_KINDS)}")
    if not isinstance(threshold.get("joint"), bool) or (threshold["joint"] and rule == "single"):
        raise fail(f"threshold.joint must be true or false (false for a single score), got {threshold.get('joint')!r}")
    return dict(choice)


def write_choice(choice: Mapping[str, Any], path: str | os.PathLike, *, header: str = "") -> Path:
    """Write ``choice`` (validated) as yaml, ``header`` lines as comments above it."""
    path = Path(path)
    check_choice(choice, str(path))
    comments = "".join(f"# {line}\n".replace("# \n", "#\n") for line in header.splitlines())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(comments + yaml.safe_dump(dict(choice), sort_keys=False, default_flow_style=None, width=120))
    return path


def read_choice(path: str | os.PathLike) -> dict[str, Any]:
    """Load and validate a monitor choice written by ``write_choice``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no monitor choice at {path}; `python -m launch.evaluate rollouts=... out=<dir>` writes "
                                "<dir>/monitor_<task>.yaml (give its path as monitor_file=)")
    try:
        choice = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{path} is not valid yaml ({err}); write it again with `python -m launch.evaluate`") from err
    return check_choice(choice, str(path))
