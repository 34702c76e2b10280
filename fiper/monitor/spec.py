"""MonitorSpec: the one definition of a monitor — its scores, windows, alarm rule, threshold type,
joint flag and δ — validated once, on construction.

Every layer serialises this: the fit config group ``monitor`` (``launch/components.py``), the evaluation's
monitor files (``monitor_<task>.yaml``), ``monitor.json``. A score's hyper-parameters default to
its class's constructor defaults (``fiper/scores/<name>.py``); nothing restates them.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from calibration import THRESHOLD_KINDS, check_delta
from calibration.joint import JOINT_RULES
from fiper.aggregation import check_rule

DEFAULT_WINDOW = 5  # decisions, for a score given no window


@dataclass(frozen=True)
class ScoreSpec:
    """One failure score: its registry name (a score defined outside fiper: its import path
    ``'<module>:<Class>'``) and its complete constructor arguments.

    ``ScoreSpec.of({"score": "ace", "kappa": 0.05})`` fills every other argument with the score
    class's default, so ``params`` always holds the full configuration that ``build`` uses.
    """

    score: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from fiper.scores.registry import score_class, score_id

        try:
            cls = score_class(self.score)
        except KeyError as err:
            raise ValueError(err.args[0]) from None
        object.__setattr__(self, "score", score_id(cls))  # a score of your own by its import path, found in any process
        given = dict(self.params)
        signature = inspect.signature(cls)
        accepts_any = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
        unknown = sorted(set(given) - set(signature.parameters)) if not accepts_any else []
        if unknown:
            known = [p for p in signature.parameters if p != "self"]
            raise ValueError(f"score {self.score!r}: unknown parameters {unknown}; it takes {known}")
        try:
            built = cls(**given)
        except (TypeError, ValueError) as err:
            raise ValueError(f"score {self.score!r}: invalid parameters {given}: {err}") from err
        params = dict(built.config) if hasattr(built, "config") else given
        object.__setattr__(self, "params", params)

    @classmethod
    def of(cls, value: ScoreSpec | Mapping[str, Any], name: str = "") -> ScoreSpec:
        """From ``{score: <registry name>, **params}`` (``score`` defaults to the indicator ``name``)."""
        if isinstance(value, ScoreSpec):
            return value
        if not isinstance(value, Mapping):
            raise ValueError(f"score {name!r} must be a mapping {{score: <registry name>, ...parameters}}, got {value!r}")
        params = dict(value)
        kind = params.pop("score", None) or name
        if not kind:
            raise ValueError(f"score config {dict(value)} names no score; add score: <registry name>")
        return cls(str(kind), params)

    def build(self) -> Any:
        """A new, unfitted score with these parameters."""
        from fiper.scores.registry import make_score

        return make_score(self.score, **self.params)

    def as_dict(self) -> dict[str, Any]:
        return {"score": self.score, **self.params}


def score_defaults(name: str) -> dict[str, Any]:
    """``{score: name, **every parameter at its default}``: the registered config of a score."""
    return ScoreSpec(name).as_dict()


@dataclass(frozen=True)
class MonitorSpec:
    """What a monitor computes and how it alarms; thresholds themselves come from calibration.

    ``scores`` maps indicator names to ScoreSpecs, ``windows`` gives each a trailing window in
    decisions (one number: the same window for every score; a score without one gets 5), ``rule`` combines them ('and': every indicator crosses, 'or': any, 'single': the
    only one), ``threshold_type`` is the threshold type, ``joint`` shares one conformal height between
    the indicators, ``delta`` is the false-alarm level (None until calibrated).
    """

    scores: Mapping[str, ScoreSpec]
    windows: Mapping[str, int] = field(default_factory=dict)
    rule: str | None = None
    threshold_type: str = "constant"
    joint: bool = False
    delta: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.scores, Mapping) or not self.scores:
            raise ValueError("scores is empty; name at least one score, e.g. {rnd_oe: {score: rnd_oe}}")
        scores = {str(n): ScoreSpec.of(s, str(n)) for n, s in self.scores.items()}
        windows = self.windows or {}
        if isinstance(windows, (int, float)) and not isinstance(windows, bool):
            windows = {name: windows for name in scores}  # one window for every score
        if not isinstance(windows, Mapping):
            raise ValueError(f"windows must map each score to its window in decisions, e.g. {{{', '.join(f'{n}: 5' for n in scores)}}}, "
                             f"or be one number for every score; got {windows!r}")
        windows = dict(windows)
        extra = sorted(set(windows) - set(scores))
        if extra:
            raise ValueError(f"windows name {extra}, which are not scores of this monitor {sorted(scores)}; drop their windows "
                             f"with the scores (launch.fit: {' '.join(repr('~monitor.windows.' + str(n)) for n in extra)})")
        for name in scores:
            w = windows.get(name, DEFAULT_WINDOW)
            if isinstance(w, bool) or not isinstance(w, (int, float)) or int(w) != w or int(w) < 1:
                raise ValueError(f"window of {name!r} must be a whole number of decisions >= 1, got {w!r}")
            windows[name] = int(w)
        rule = self.rule or ("single" if len(scores) == 1 else "and")
        try:
            check_rule(rule, len(scores))
        except ValueError as err:
            raise ValueError(f"{err} (scores: {sorted(scores)})") from None
        rule = "single" if len(scores) == 1 else rule  # 'and' / 'or' of one score is that score
        if self.threshold_type not in THRESHOLD_KINDS:
            raise ValueError(f"threshold type {self.threshold_type!r} unknown; expected one of {sorted(THRESHOLD_KINDS)}")
        if not isinstance(self.joint, bool):
            raise ValueError(f"joint must be true or false, got {self.joint!r}")
        if self.joint and rule == "single":
            raise ValueError("joint calibration shares one height between several scores; a single score has nothing to share (joint: false)")
        if self.joint and rule not in JOINT_RULES:
            raise ValueError(f"joint calibration combines indicators by {JOINT_RULES}, not rule {rule!r}; set joint: false")
        if self.joint and self.threshold_type == "time_varying":
            raise ValueError("joint calibration supports the constant and band threshold types, not time_varying")
        delta = None if self.delta is None else float(check_delta(self.delta))
        for key, value in (("scores", scores), ("windows", {n: windows[n] for n in scores}), ("rule", rule), ("delta", delta)):
            object.__setattr__(self, key, value)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.scores)

    @classmethod
    def of(cls, value: MonitorSpec | Mapping[str, Any], source: str = "monitor spec") -> MonitorSpec:
        """From a plain mapping (yaml / json / hydra); unknown keys are an error naming ``source``."""
        if isinstance(value, MonitorSpec):
            return value
        if not isinstance(value, Mapping):
            raise ValueError(f"{source}: a monitor spec is a mapping with scores, windows, rule, threshold_type, joint, delta; got {value!r}")
        known = {"scores", "windows", "rule", "threshold_type", "joint", "delta"}
        unknown = sorted(set(value) - known)
        if unknown:
            file = ("; this is an evaluation's monitor file (monitor_<task>.yaml): read it with "
                    "fiper.monitor.monitor_file.read_monitor_file(path)['spec']") if {"monitor", "evaluated"} <= set(value) else ""
            raise ValueError(f"{source}: unknown monitor settings {unknown}; known: {sorted(known)}{file}")
        try:
            return cls(**{k: v for k, v in value.items()})
        except ValueError as err:
            raise ValueError(f"{source}: {err}") from None

    def replace(self, **changes: Any) -> MonitorSpec:
        """A copy with some fields changed (validated again)."""
        values = {"scores": self.scores, "windows": self.windows, "rule": self.rule, "threshold_type": self.threshold_type,
                  "joint": self.joint, "delta": self.delta}
        return MonitorSpec(**{**values, **changes})

    def as_dict(self) -> dict[str, Any]:
        """Json / yaml form; ``MonitorSpec.of(spec.as_dict()) == spec``."""
        return {"scores": {n: s.as_dict() for n, s in self.scores.items()}, "windows": dict(self.windows), "rule": self.rule,
                "threshold_type": self.threshold_type, "joint": self.joint, "delta": self.delta}


def fiper_spec() -> MonitorSpec:
    """FIPER's monitor: RND-OE on the policy embedding AND action-chunk entropy, trailing windows of 5."""
    return MonitorSpec({"rnd_oe": ScoreSpec("rnd_oe"), "ace": ScoreSpec("ace")}, {"rnd_oe": DEFAULT_WINDOW, "ace": DEFAULT_WINDOW}, "and")


def with_action_steps(spec: MonitorSpec, n_action_steps: int | None) -> MonitorSpec:
    """``spec`` with every score whose ``n_action_steps`` is left None (STAC) given the env steps per decision the data
    were recorded with, as the offline evaluation fills it from the store; unchanged when that is unknown."""
    if n_action_steps is None:
        return spec
    scores = {name: ScoreSpec(s.score, {**s.params, "n_action_steps": int(n_action_steps)})
              if "n_action_steps" in s.params and s.params["n_action_steps"] is None else s for name, s in spec.scores.items()}
    return replace(spec, scores=scores)
