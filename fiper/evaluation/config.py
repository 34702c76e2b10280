"""Configuration of an offline evaluation: methods, score hyper-parameters, grid, splits, selection.

``EvaluationConfig.from_mapping`` validates a plain mapping (a hydra config turned into a dict) and
refuses unknown keys, so a typo in a yaml fails loudly instead of silently using a default.
Score hyper-parameters default to each score class's own (fiper.monitor.spec.ScoreSpec); the
other defaults here are restated by ``launch/conf/evaluate.yaml`` (tested to agree).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from calibration import THRESHOLD_KINDS, check_delta
from calibration.joint import JOINT_RULES
from fiper.aggregation import check_rule
from fiper.control.period import positive_seconds
from fiper.monitor.spec import MonitorSpec, ScoreSpec, score_defaults

EPISODE = "episode"  # window label: the whole episode (cumulative sum), resolved per task
CRITERIA = ("accuracy", "twa", "auroc", "accuracy_twa")  # accuracy_twa: mean of the two


def criterion_value(criterion: str, metric: Callable[[str], Any]) -> Any:
    """The selection criterion from ``metric(name)`` of one metric (a number or an array): accuracy_twa is the mean
    of accuracy and TWA (how many failures, and how early), the others the metric itself."""
    if criterion == "accuracy_twa":
        return 0.5 * (metric("accuracy") + metric("twa"))
    return metric(criterion)

DEFAULT_WINDOWS: tuple[int | str, ...] = (1, 3, 5, 10, 20, EPISODE)
DEFAULT_DELTAS: tuple[float, ...] = tuple(round(0.01 * i, 2) for i in range(1, 11))  # 1-delta in 0.90..0.99

# Every registered score at its class defaults ({indicator: {'score': registry name, **params}}).
DEFAULT_SCORE_NAMES: tuple[str, ...] = ("rnd_oe", "ace", "stac", "rnd_a", "logpzo", "pca_kmeans", "mahalanobis", "knn", "elapsed",
                                       "obs_novelty", "reconstruction", "projected_duration")


def default_scores() -> dict[str, dict[str, Any]]:
    return {n: score_defaults(n) for n in DEFAULT_SCORE_NAMES}


# The methods an evaluation compares by default (launch.evaluate offers each as the hydra group method/<name>).
DEFAULT_METHODS: dict[str, dict[str, Any]] = {
    # FIPER (docs/method.md §2-§4): RND-OE on the policy embedding AND action-chunk entropy; alarm when both cross
    "fiper": {"scores": ["rnd_oe", "ace"], "rule": "and", "windows": None},
    # the same with one conformal height shared by both indicators (calibration/joint.py), so the AND spends
    # its whole false-alarm budget delta (per-score calibration at delta each leaves it far below delta)
    "fiper_joint": {"scores": ["rnd_oe", "ace"], "rule": "and", "windows": None, "joint": True},
    # the two indicators with the OR rule, one height for the max of the two: fires as soon as either is out
    "fiper_or_joint": {"scores": ["rnd_oe", "ace"], "rule": "or", "windows": None, "joint": True},
    # FIPER's two indicators OR the clock, one height for the largest of the three normalised scores: adds the
    # failure that only shows as "taking too long" (a timeout, slow progress) at the same delta
    "fiper_clock_or_joint": {"scores": ["rnd_oe", "ace", "elapsed"], "rule": "or", "joint": True,
                             "windows": {"elapsed": [1]}},
    # FIPER's two indicators OR the raw observation's novelty, one height: adds states the policy's embedding
    # compresses away (e.g. a dropped object) at the same delta; reads the recorded observations
    "fiper_obs_or_joint": {"scores": ["rnd_oe", "ace", "obs_novelty"], "rule": "or", "joint": True, "windows": None},
    # FIPER's two indicators OR the camera images' reconstruction error, one height: adds what the policy's image
    # encoder drops (a distractor its keypoints ignore) at the same delta; left out of tasks without a camera image
    "fiper_rec_or_joint": {"scores": ["rnd_oe", "ace", "reconstruction"], "rule": "or", "joint": True, "windows": None},
    # FIPER's alarm rule chosen on validation, per threshold type, like the windows (docs/evaluation.md):
    # the jointly calibrated AND, kept unless another member beats it on validation by more than one standard
    # error of the paired difference over validation resamples (keep_first_se): a choice within split noise
    # does not transfer, so it falls back to the published rule
    "fiper_select": {"select": ["fiper_joint", "fiper_or_joint", "rnd_oe", "ace", "fiper_clock_or_joint", "fiper_obs_or_joint",
                                "fiper_rec_or_joint"],
                     "keep_first_se": 1.0},
    "rnd_oe": {"scores": ["rnd_oe"], "rule": "single", "windows": None},  # §2: novelty in the policy's embedding
    "ace": {"scores": ["ace"], "rule": "single", "windows": None},  # §3: entropy of the sampled chunks
    "stac": {"scores": ["stac"], "rule": "single", "windows": [EPISODE]},  # §6, Sentinel: published as a cumulative sum
    "rnd_a": {"scores": ["rnd_a"], "rule": "single", "windows": None},  # §6: RND on (action chunk, embedding)
    "logpzo": {"scores": ["logpzo"], "rule": "single", "windows": None},  # §6, FAIL-Detect: flow matching, ||Z||^2
    "pca_kmeans": {"scores": ["pca_kmeans"], "rule": "single", "windows": None},  # §6: nearest k-means centre in PCA space
    "mahalanobis": {"scores": ["mahalanobis"], "rule": "single", "windows": None},  # §6: Mahalanobis distance
    "knn": {"scores": ["knn"], "rule": "single", "windows": None},  # §6: mean distance to the k nearest fit embeddings
    # reference, not a monitor of the policy: alarm once the episode outlasts (1 - delta) of the calibration successes
    # (the score is the decision index, already cumulative, so window 1 only)
    "elapsed": {"scores": ["elapsed"], "rule": "single", "windows": [1]},
    # reference, not a monitor of the policy: Mahalanobis distance of the raw observation (low-dim keys, images
    # grey and pooled to 8 x 8) to the fit observations; windows chosen on validation like every score's
    "obs_novelty": {"scores": ["obs_novelty"], "rule": "single", "windows": None},
    # reference, not a monitor of the policy: an autoencoder's reconstruction error of the camera images, fitted on the
    # fit observations (left out of a task whose stores hold no camera image)
    "reconstruction": {"scores": ["reconstruction"], "rule": "single", "windows": None},
}


# The published baselines: repeats.md compares every other method with the best of these (paired).
DEFAULT_BASELINES: tuple[str, ...] = ("stac", "rnd_a", "logpzo", "pca_kmeans", "mahalanobis", "knn")

# The trivial references: detectors that read nothing of the policy. report.md, metrics.json and
# repeats.md state every method's margin over the best of these ("what the monitor adds").
DEFAULT_REFERENCES: tuple[str, ...] = ("elapsed", "obs_novelty", "reconstruction")


def check_windows(windows: Sequence[Any], where: str) -> tuple[int | str, ...]:
    """Window labels: positive ints (decisions) or 'episode'; duplicates refused."""
    if isinstance(windows, (str, int)) or not len(windows):
        raise ValueError(f"{where} must be a non-empty list of window lengths (ints >= 1 or '{EPISODE}'), got {windows!r}")
    out: list[int | str] = []
    for w in windows:
        if isinstance(w, str):
            if w != EPISODE:
                raise ValueError(f"{where}: unknown window {w!r}; use an int >= 1 or '{EPISODE}'")
            out.append(EPISODE)
        elif isinstance(w, bool) or int(w) != w or int(w) < 1:
            raise ValueError(f"{where}: window {w!r} must be a whole number of decisions >= 1 or '{EPISODE}'")
        else:
            out.append(int(w))
    if len(set(out)) != len(out):
        raise ValueError(f"{where}: duplicate windows in {list(windows)}")
    return tuple(out)


@dataclass(frozen=True)
class MethodSpec:
    """A monitor to evaluate: a MonitorSpec whose windows and threshold type are still to be chosen.

    ``scores`` name entries of the evaluation's ``scores`` (ScoreSpecs), ``rule`` and ``joint`` are
    the spec's; ``monitor_spec`` gives the MonitorSpec once validation has chosen the windows and
    threshold type. ``windows`` restricts this method's window grid (None: the global grid), or, as a
    mapping {score: windows}, the windows of the scores it names (``score_windows``; the others use the
    grid); with several scores every combination of per-score windows is a candidate. A method with
    ``select`` (rule 'select', no scores of its own) is whichever of the named methods validates best, per
    threshold type: the choice of alarm rule made on the validation split, like the windows. With
    ``keep_first_se`` > 0 the first member is kept unless another beats it on validation by more than
    that many standard errors of the paired difference (selection.choose_member).
    """

    name: str
    scores: tuple[str, ...]
    rule: str = "single"
    windows: tuple[int | str, ...] | None = None
    joint: bool = False
    select: tuple[str, ...] = ()
    score_windows: tuple[tuple[str, tuple[int | str, ...]], ...] = ()
    keep_first_se: float = 0.0

    @classmethod
    def of(cls, name: str, spec: Mapping[str, Any]) -> MethodSpec:
        if "select" in spec:
            members = spec["select"]
            if set(spec) - {"select", "keep_first_se"}:
                raise ValueError(f"method {name!r}: a 'select' method takes only the list of methods to choose from and "
                                 f"keep_first_se, got keys {sorted(spec)}")
            if not members or isinstance(members, str) or len(set(members)) != len(members):
                raise ValueError(f"method {name!r}: 'select' must be a non-empty list of distinct method names, got {members!r}")
            keep = spec.get("keep_first_se", 0.0)
            if isinstance(keep, bool) or not isinstance(keep, (int, float)) or not keep >= 0:
                raise ValueError(f"method {name!r}: keep_first_se must be a number of standard errors >= 0 (0: the plain "
                                 f"best member), got {keep!r}")
            return cls(name, (), "select", None, False, tuple(str(m) for m in members), keep_first_se=float(keep))
        unknown = set(spec) - {"scores", "rule", "windows", "joint"}
        if unknown:
            raise ValueError(f"method {name!r}: unknown keys {sorted(unknown)}; expected scores, rule, windows, joint")
        scores = spec.get("scores")
        if not scores or isinstance(scores, str):
            raise ValueError(f"method {name!r}: 'scores' must be a non-empty list of score names, got {scores!r}")
        scores = tuple(str(s) for s in scores)
        if len(set(scores)) != len(scores):
            raise ValueError(f"method {name!r}: a score appears twice in {list(scores)}")
        rule = str(spec.get("rule") or ("single" if len(scores) == 1 else "and"))
        try:
            check_rule(rule, len(scores))
        except ValueError as err:
            raise ValueError(f"method {name!r}: {err}") from None
        windows, score_windows = spec.get("windows"), ()
        if isinstance(windows, Mapping):
            unknown_scores = [k for k in windows if k not in scores]
            if unknown_scores or not windows:
                raise ValueError(f"method {name!r}: windows per score must name some of its scores {list(scores)}, got "
                                 f"{sorted(map(str, windows)) or 'none'}; give {{score: [windows]}} or a list for every score")
            score_windows = tuple((s, check_windows(windows[s], f"method {name!r} windows of {s!r}")) for s in scores if s in windows)
            windows = None
        windows = None if windows is None else check_windows(windows, f"method {name!r} windows")
        joint = spec.get("joint", False)
        if not isinstance(joint, bool):
            raise ValueError(f"method {name!r}: 'joint' must be true or false, got {joint!r}")
        if joint and rule not in JOINT_RULES:
            raise ValueError(f"method {name!r}: joint calibration shares one height between the indicators of an "
                             f"{' / '.join(JOINT_RULES)} alarm, not rule {rule!r}; set joint: false")
        return cls(name, scores, rule, windows, joint, score_windows=score_windows)

    def monitor_spec(self, scores: Mapping[str, Mapping[str, Any]], windows: Mapping[str, int], threshold_type: str) -> MonitorSpec:
        """The MonitorSpec this method is once its windows (in decisions) and threshold type are chosen."""
        if self.select:
            raise ValueError(f"method {self.name!r} selects among {list(self.select)}: take the spec of the member it chose")
        return MonitorSpec({s: scores[s] for s in self.scores}, {s: int(windows[s]) for s in self.scores}, self.rule,
                           threshold_type, self.joint)

    def as_dict(self) -> dict[str, Any]:
        if self.select:
            return {"select": list(self.select), **({"keep_first_se": self.keep_first_se} if self.keep_first_se else {})}
        windows = {s: list(w) for s, w in self.score_windows} if self.score_windows else (
            None if self.windows is None else list(self.windows))
        return {"scores": list(self.scores), "rule": self.rule, "windows": windows, "joint": self.joint}


@dataclass(frozen=True)
class SplitConfig:
    """Fractions of the episode split (see fiper.evaluation.splits)."""

    fit: float = 0.4  # share of ID successes that train the score models
    calibration: float = 0.4  # share of ID successes that calibrate thresholds
    validation: float = 0.5  # share of every evaluation stratum that goes to validation (rest: test)

    def __post_init__(self) -> None:
        for name in ("fit", "calibration", "validation"):
            value = getattr(self, name)
            if not 0.0 < float(value) < 1.0:
                raise ValueError(f"split.{name} must lie strictly between 0 and 1, got {value}")
        if self.fit + self.calibration > 1.0 + 1e-12:
            raise ValueError(f"split.fit + split.calibration = {self.fit + self.calibration:g} > 1: they share the ID successes")


@dataclass(frozen=True)
class EvaluationConfig:
    """Everything an offline evaluation needs besides the stores."""

    windows: tuple[int | str, ...] = DEFAULT_WINDOWS
    threshold_types: tuple[str, ...] = ("constant", "band", "time_varying")
    deltas: tuple[float, ...] = DEFAULT_DELTAS
    split: SplitConfig = field(default_factory=SplitConfig)
    band_d1_fraction: float = 0.5
    selection: str = "accuracy_twa"  # validation criterion (mean of balanced accuracy and TWA) over the delta grid; ties -> TWA
    # True: the selection (windows, 'select' members) sees thresholds fitted on one half of the
    # calibration split and test uses thresholds refitted on the other half, so the chosen
    # configuration's guarantee is exact (its thresholds never informed the choice)
    refit_after_selection: bool = False
    seed: int = 0
    device: str = "cpu"  # where score models are fitted and run; 'auto': CUDA when available
    control_period_s: float | None = None  # seconds per env step; None: the store attr control_period_s, else unreported (NaN)
    scores: Mapping[str, Mapping[str, Any]] = field(default_factory=default_scores)
    methods: Mapping[str, MethodSpec] = field(default_factory=lambda: {n: MethodSpec.of(n, s) for n, s in DEFAULT_METHODS.items()})
    # methods that count as baselines in the paired comparison over repeats; names of dropped
    # default methods are ignored, other unknown names are an error
    baselines: tuple[str, ...] = DEFAULT_BASELINES
    # trivial reference methods (e.g. the elapsed-time clock): each method's margin over the best of
    # them is reported; names of dropped default methods are ignored, other unknown names are an error
    references: tuple[str, ...] = DEFAULT_REFERENCES
    # method whose chosen configuration is written as a monitor file per task, ready for
    # launch.fit / launch.calibrate (None: none; a dropped default method: none)
    deploy_method: str | None = "fiper_select"
    plot_method: str | None = None  # method whose traces are drawn (None: the deployed one, else the first)
    plot_threshold_type: str | None = "band"  # threshold type of the trace plot (None / not evaluated: the first)
    plot_delta: float = 0.05  # delta of the trace and ROC plots and the detection tables (nearest one of the grid)
    progress: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "windows", check_windows(self.windows, "windows"))
        kinds = tuple(self.threshold_types)
        bad = [k for k in kinds if k not in THRESHOLD_KINDS]
        if not kinds or bad or len(set(kinds)) != len(kinds):
            raise ValueError(f"threshold_types must be distinct names from {sorted(THRESHOLD_KINDS)}, got {list(kinds)}")
        object.__setattr__(self, "threshold_types", kinds)
        if isinstance(self.deltas, (int, float)) or not len(self.deltas):
            raise ValueError(f"deltas must be a non-empty list of levels in (0, 1), got {self.deltas!r}")
        deltas = tuple(sorted({float(check_delta(d)) for d in self.deltas}))
        object.__setattr__(self, "deltas", deltas)
        if not 0.0 < float(self.band_d1_fraction) < 1.0:
            raise ValueError(f"band_d1_fraction must lie strictly between 0 and 1, got {self.band_d1_fraction}")
        if self.selection not in CRITERIA:
            raise ValueError(f"selection criterion {self.selection!r} unknown; expected one of {CRITERIA}")
        if self.control_period_s is not None:
            positive_seconds(self.control_period_s, "the configured control_period_s (control_period_s=...)",
                             "correct the override, or drop it to read each store's attrs (control_period_s=null)")
        scores = {}
        for name, spec in self.scores.items():
            try:
                scores[str(name)] = ScoreSpec.of(spec, str(name)).as_dict()
            except ValueError as err:
                raise ValueError(f"scores.{name}: {err}") from None
        object.__setattr__(self, "scores", scores)
        methods = {n: (m if isinstance(m, MethodSpec) else MethodSpec.of(n, m)) for n, m in self.methods.items()}
        if not methods:
            raise ValueError("methods is empty: configure at least one method to evaluate")
        for name, method in list(methods.items()):  # members that are dropped default methods are left out
            kept = tuple(m for m in method.select if m in methods or m not in DEFAULT_METHODS)
            if method.select and kept != method.select:
                if not kept:
                    raise ValueError(f"method {name!r} selects among {list(method.select)}, all of them dropped; configure one "
                                     f"of them, or drop {name!r} too (launch.evaluate: '~methods.{name}')")
                methods[name] = method = dataclasses.replace(method, select=kept)
            bad = [m for m in method.select if m not in methods or methods[m].select]
            if bad:
                raise ValueError(f"method {method.name!r} selects among {bad}, which are not configured methods with scores "
                                 f"(have {sorted(n for n, m in methods.items() if not m.select)}); configure them, or drop "
                                 f"{method.name!r} too (launch.evaluate: '~methods.{method.name}')")
            missing = [s for s in method.scores if s not in scores]
            if missing:
                raise ValueError(f"method {method.name!r} uses scores {missing} that are not configured under 'scores' (have {sorted(scores)})")
        object.__setattr__(self, "methods", methods)
        object.__setattr__(self, "baselines", self._method_names("baselines", self.baselines, methods))
        object.__setattr__(self, "references", self._method_names("references", self.references, methods))
        both = sorted(set(self.baselines) & set(self.references))
        if both:
            raise ValueError(f"methods {both} are both baselines and references; a method plays one role, remove it from one list")
        if self.deploy_method is not None and self.deploy_method not in methods:
            if self.deploy_method not in DEFAULT_METHODS:
                raise ValueError(f"deploy_method {self.deploy_method!r} is not one of the methods {sorted(methods)}; "
                                 "set it to one of them, or null to write no monitor file (launch.evaluate: deploy_method=null)")
            object.__setattr__(self, "deploy_method", None)
        if self.plot_method is not None and self.plot_method not in methods:
            raise ValueError(f"plot_method {self.plot_method!r} is not one of the methods {sorted(methods)}; "
                             "set plot_method to one of them, or null for the first (launch.evaluate: plot_method=null)")

    @staticmethod
    def _method_names(key: str, names: Sequence[str], methods: Mapping[str, MethodSpec]) -> tuple[str, ...]:
        """Configured method names of a role list: dropped default methods left out, unknown names refused."""
        if isinstance(names, str):
            raise ValueError(f"{key} must be a list of method names, got {names!r}")
        unknown = [b for b in names if b not in methods and b not in DEFAULT_METHODS]
        if unknown:
            raise ValueError(f"{key} {unknown} are not configured methods (have {sorted(methods)}); fix the names, or set {key}=[]")
        return tuple(str(b) for b in names if b in methods)

    @property
    def used_scores(self) -> tuple[str, ...]:
        """Score indicators some method reads, in configuration order (only these are fitted)."""
        used = {s for m in self.methods.values() for s in m.scores}
        return tuple(s for s in self.scores if s in used)

    def method_windows(self, method: MethodSpec, score: str | None = None) -> tuple[int | str, ...]:
        """The window candidates of ``method`` (of its ``score`` when the method gives that score its own)."""
        own = dict(method.score_windows).get(score) if score is not None else None
        if own is not None:
            return own
        return method.windows if method.windows is not None else self.windows

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any] | None) -> EvaluationConfig:
        """Build from a plain mapping (e.g. a resolved hydra config); unknown keys are an error."""
        values = dict(mapping or {})
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown evaluation settings {sorted(unknown)}; known: {sorted(known)}")
        if "split" in values and not isinstance(values["split"], SplitConfig):
            split = dict(values["split"])
            extra = set(split) - {"fit", "calibration", "validation"}
            if extra:
                raise ValueError(f"unknown split settings {sorted(extra)}; expected fit, calibration, validation")
            values["split"] = SplitConfig(**{k: float(v) for k, v in split.items()})
        for key in ("windows", "threshold_types", "deltas", "baselines", "references"):
            if key in values and values[key] is not None and not isinstance(values[key], (str, int, float)):
                values[key] = tuple(values[key])
        if "methods" in values:
            values["methods"] = {n: (m if isinstance(m, MethodSpec) else MethodSpec.of(n, dict(m))) for n, m in dict(values["methods"]).items()}
        if "scores" in values:
            values["scores"] = {n: dict(s or {}) for n, s in dict(values["scores"]).items()}
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        """Json-able form; ``from_mapping(as_dict())`` rebuilds an equal config."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["windows"] = list(self.windows)
        out["threshold_types"] = list(self.threshold_types)
        out["deltas"] = list(self.deltas)
        out["baselines"] = list(self.baselines)
        out["references"] = list(self.references)
        out["split"] = asdict(self.split)
        out["scores"] = copy.deepcopy({n: dict(s) for n, s in self.scores.items()})
        out["methods"] = {n: m.as_dict() for n, m in self.methods.items()}
        return out
