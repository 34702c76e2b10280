"""FailureMonitor: failure scores -> trailing windows -> thresholds -> one alarm per decision.

Online, ``step(embedding, samples)`` scores one decision from the batch the policy already drew
and never raises: invalid input or an exception inside a score yields a fail-safe alarm whose
``reason`` says what happened. Offline, ``score_offline`` + ``alarms_offline`` evaluate a whole
store with array operations and give the same numbers (see tests/monitor).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch

from calibration import JOINT_RULES, THRESHOLD_KINDS, InsufficientCalibrationError, Threshold, fit_joint, fit_threshold
from calibration.quantile import min_calibration_size
from fiper.aggregation import AlarmStep, AlarmTrace, OnlineAlarm, check_rule, evaluate_alarms, windowed_sum
from fiper.monitor.identity import PolicyIdentity
from fiper.monitor.padding import to_padded
from fiper.monitor.verdict import MonitorVerdict
from fiper.monitor.spec import MonitorSpec, ScoreSpec
from fiper.scores.base import FailureScore, ScoreFitData
from fiper.scores.registry import score_id
from fiper.rules import guarantees_delta, separate_bound_text
from fiper.scores.inputs import as_array, check_scores


def _finite(x: Any) -> bool:
    """Whether an array or tensor holds only finite values."""
    return bool(torch.isfinite(x).all()) if isinstance(x, torch.Tensor) else bool(np.isfinite(x).all())


class MonitorNotCalibratedError(RuntimeError):
    """The monitor has fitted scores but no thresholds yet."""


class FailureMonitor:
    """Fitted scores, their windows and thresholds, and the rule that combines them.

    ``scores`` maps indicator names to fitted scores; ``windows`` gives each its trailing
    window in decisions; ``rule`` is 'and' (FIPER: alarm when every indicator crosses),
    'or', or 'single'. Thresholds come from :meth:`calibrate` or a saved artifact.
    """

    def __init__(
        self,
        scores: Mapping[str, FailureScore],
        identity: PolicyIdentity,
        *,
        windows: Mapping[str, int],
        rule: str = "and",
        thresholds: Mapping[str, Threshold] | None = None,
        threshold_type: str = "constant",
        joint: bool = False,
    ):
        if not scores:
            raise ValueError("a FailureMonitor needs at least one fitted score")
        try:
            check_rule(rule, len(scores))
        except ValueError as err:
            raise ValueError(f"{err} (scores: {sorted(scores)})") from None
        if set(windows) != set(scores):
            raise ValueError(f"windows must name exactly the scores {sorted(scores)}, got {sorted(windows)}")
        self.scores = dict(scores)
        self.identity = identity
        self.rule = rule
        self.windows = {n: int(w) for n, w in windows.items()}
        self.threshold_type, self.joint = threshold_type, bool(joint)  # how calibrate() fits thresholds by default
        for name, score in self.scores.items():
            self._check_score(name, score)
        self.thresholds: dict[str, Threshold] | None = None
        self._alarm: OnlineAlarm | None = None
        if thresholds is not None:
            self.set_thresholds(thresholds)
        self.reset()

    @classmethod
    def from_spec(cls, spec: MonitorSpec | Mapping[str, Any], data: ScoreFitData, identity: PolicyIdentity) -> FailureMonitor:
        """Fit every score of ``spec`` on in-distribution decisions; calibrate the result next."""
        spec = MonitorSpec.of(spec)
        fitted = {}
        for name, score in spec.scores.items():
            try:
                fitted[name] = score.build().fit(data)
            except Exception as err:  # keep the score's own error and traceback, say which score raised it
                err.add_note(f"while fitting score {name!r} ({score.score})")
                raise
        return cls(fitted, identity, windows=spec.windows, rule=spec.rule, threshold_type=spec.threshold_type, joint=spec.joint)

    @property
    def spec(self) -> MonitorSpec:
        """This monitor's configuration (δ once calibrated); scores must be registered (fiper.scores.register_score)
        or importable by their path."""
        scores = {n: ScoreSpec(score_id(type(s)), s.config) for n, s in self.scores.items()}
        return MonitorSpec(scores, self.windows, self.rule, self.threshold_type, self.joint, self.delta)

    def _check_score(self, name: str, score: FailureScore) -> None:
        if not score.fitted:
            raise ValueError(f"score {name!r} is not fitted; fit it on in-distribution decisions first")
        emb_dim = getattr(score, "embedding_dim", None)
        if emb_dim is not None and emb_dim != self.identity.embedding_dim:
            raise ValueError(f"score {name!r} was fitted on embeddings of D={emb_dim} but the policy has D={self.identity.embedding_dim}")
        shape = getattr(score, "sample_shape", None)
        if shape is not None and tuple(shape) != self.identity.sample_shape:
            raise ValueError(f"score {name!r} was fitted on sample batches {tuple(shape)} but the policy draws {self.identity.sample_shape} (B, H, A)")

    # ------------------------------------------------------------------ configuration
    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.scores)

    @property
    def calibrated(self) -> bool:
        return self.thresholds is not None

    @property
    def delta(self) -> float | None:
        return next(iter(self.thresholds.values())).delta if self.thresholds else None

    @property
    def needs(self) -> frozenset[str]:
        """Which of 'embedding' / 'samples' / 'observation' the scores read."""
        return frozenset().union(*(s.needs for s in self.scores.values()))

    def set_thresholds(self, thresholds: Mapping[str, Threshold]) -> None:
        if set(thresholds) != set(self.scores):
            raise ValueError(f"thresholds must name exactly the scores {sorted(self.scores)}, got {sorted(thresholds)}")
        self.thresholds = dict(thresholds)
        self._alarm = OnlineAlarm(self.thresholds, self.windows, self.rule)

    def to(self, device: str | torch.device) -> FailureMonitor:
        """Move every score model to ``device`` (the policy's), returns self."""
        for score in self.scores.values():
            score.to(device)
        return self

    # ------------------------------------------------------------------ online
    def reset(self) -> None:
        """Start a new episode: clear windows and score histories."""
        for score in self.scores.values():
            score.reset()
        if self._alarm is not None:
            self._alarm.reset()
        self.decision = 0

    def step(self, embedding: Any, samples: Any, *, skip: Iterable[str] = (), observation: Mapping[str, Any] | None = None) -> MonitorVerdict:
        """Score one decision: embedding (D,) or (1, D), samples (B, H, A) or (1, B, H, A), and for
        scores that read it the raw ``observation`` {key: array} (MonitoredPolicy passes it).

        ``skip`` names scores left out of this decision (their windows hold their value), e.g.
        ACE while the policy's sampling is being steered. Never raises on bad input.
        """
        if not self.calibrated:
            raise MonitorNotCalibratedError("the monitor has no thresholds: calibrate it (python -m launch.calibrate) before running it")
        self.decision += 1
        skip = tuple(n for n in self.names if n in set(skip)) if skip else ()
        active = [n for n in self.names if n not in skip]
        if not active:
            return self._failsafe("every score was skipped: the decision is unmonitored", skip)
        try:
            embedding, samples = self._prepare(embedding, samples)
        except (TypeError, ValueError) as err:
            return self._failsafe(f"invalid input: {err}", skip)
        raw: dict[str, float] = {}
        score_ms: dict[str, float] = {}
        for name in active:
            score = self.scores[name]
            start = time.perf_counter()
            try:
                value = score.step_checked(embedding if "embedding" in score.needs else None, samples if "samples" in score.needs else None,
                                           **({"observation": observation} if "observation" in score.needs else {}))
                value = float(check_scores(f"score {name!r}", np.atleast_1d(value), 1)[0])  # one number, not an array of two
            except Exception as err:  # fail-safe: any score error raises the alarm
                return self._failsafe(f"score {name!r} raised {type(err).__name__}: {err}", skip)
            if not math.isfinite(value):
                return self._failsafe(f"score {name!r} returned {value}", skip)
            raw[name] = value
            score_ms[name] = (time.perf_counter() - start) * 1e3
        a = self._alarm.step(raw, skip)
        reason = f"{' and '.join(a.crossed)} above threshold" if a.alarm else ""
        return MonitorVerdict(a.step, raw, a.eta, a.gamma, a.ratio, a.combined_ratio, a.alarm, a.crossed, reason, False, skip, score_ms)

    def _prepare(self, embedding: Any, samples: Any) -> tuple[Any, Any]:
        """Check the inputs once per decision (shape, finite) for every score: strip a leading batch
        axis of 1; CPU data becomes numpy (shared memory), a tensor on another device stays there."""
        ident = self.identity
        checked = []
        for what, value, shape in (("embedding", embedding, (ident.embedding_dim,)), ("samples", samples, ident.sample_shape)):
            if what not in self.needs:
                checked.append(None)
                continue
            x = value if isinstance(value, torch.Tensor) and value.device.type != "cpu" else as_array("monitor", what, value)
            if x.ndim == len(shape) + 1 and x.shape[0] == 1:
                x = x[0]
            if tuple(x.shape) != shape:
                raise ValueError(f"{what} {'has' if what == 'embedding' else 'have'} shape {tuple(x.shape)}, the monitor expects {shape}"
                                 + (" (B, H, A)" if what == "samples" else ""))
            checked.append(x)
        bad = [w for w, x in zip(("embedding", "samples"), checked) if x is not None and not _finite(x)]
        if bad:
            raise ValueError(f"non-finite values in {' and '.join(bad)}")
        return checked[0], checked[1]

    def _failsafe(self, reason: str, skip: tuple[str, ...]) -> MonitorVerdict:
        a: AlarmStep = self._alarm.hold()
        return MonitorVerdict(a.step, {}, a.eta, a.gamma, {}, math.inf, True, (), f"fail-safe: {reason}", True, skip)

    # ------------------------------------------------------------------ offline
    def score_offline(self, embeddings: Any, samples: Any, decision_ends: Any, *,
                      observations: Mapping[str, Any] | None = None) -> dict[str, np.ndarray]:
        """Raw per-decision scores (N,) of every score over a whole store, vectorised (``observations``
        {key: (N, *shape)} for scores that read the raw observation, e.g. ScoreFitData.observations)."""
        n_decisions = int(np.asarray(decision_ends)[-1]) if len(decision_ends) else 0
        return {
            n: check_scores(f"score {n!r}", s.score_offline(
                embeddings if "embedding" in s.needs else None, samples if "samples" in s.needs else None, decision_ends,
                **({"observations": observations} if "observation" in s.needs else {})), n_decisions)
            for n, s in self.scores.items()
        }

    def alarms_offline(self, raw: Mapping[str, np.ndarray], decision_ends: Any) -> AlarmTrace:
        """Windows, ratios and alarms of every episode from raw scores (as ``score_offline`` gives)."""
        if not self.calibrated:
            raise MonitorNotCalibratedError("the monitor has no thresholds: calibrate it before evaluating alarms")
        padded = {n: to_padded(raw[n], decision_ends) for n in self.names}
        lengths = next(iter(padded.values()))[1]
        return evaluate_alarms({n: p[0] for n, p in padded.items()}, self.windows, self.thresholds, lengths, self.rule)

    def calibrate(self, raw: Mapping[str, np.ndarray], decision_ends: Any, *, delta: float, threshold_type: str | None = None,
                  joint: bool | None = None, **options: Any) -> dict[str, Threshold]:
        """Fit each score's threshold on the windowed scores of successful calibration episodes.

        ``raw`` holds per-decision scores of those episodes (``score_offline`` output). By default
        each indicator is calibrated at level delta, which bounds the combined 'and' false-alarm
        probability by delta too (conservatively); ``joint=True`` calibrates the combined alarm
        itself with one shared conformal height (calibration.fit_joint: constant or band, the
        calibration episodes split into D1 / D2; ``options`` may set d1_fraction and seed).
        """
        kind = self.threshold_type if threshold_type is None else threshold_type
        joint = self.joint if joint is None else bool(joint)
        self.spec.replace(threshold_type=kind, joint=joint, delta=delta)  # one validation of the combination
        missing = [n for n in self.names if n not in raw]
        if missing:
            raise ValueError(f"calibrate: raw holds no scores for {missing} (it has {sorted(raw)}); pass the per-decision scores "
                             "of every score of the monitor, as monitor.score_offline(embeddings, samples, decision_ends) returns them")
        if len(np.asarray(decision_ends).reshape(-1)) == 0:
            raise InsufficientCalibrationError(
                f"calibrate: no calibration rollouts (decision_ends is empty); delta={float(delta):g} needs at least "
                f"{min_calibration_size(float(delta))} successful in-distribution rollouts (more for a band or joint "
                "calibration), scored with monitor.score_offline on episodes=successful_in_distribution(store)")
        if THRESHOLD_KINDS[kind] and not guarantees_delta(self.rule, len(self.names), joint):
            k, bound = len(self.names), separate_bound_text(self.rule, len(self.names), delta)
            what = f"by {bound}, not delta" if bound is not None else "by no known multiple of delta"
            fix = ("calibrate with joint=True for delta on the combined alarm" if self.rule in JOINT_RULES else
                   "state the rule's separate_bound (fiper.rules.AlarmRule) and calibrate each score at delta over it")
            warnings.warn(f"rule {self.rule!r} with each of its {k} scores calibrated separately at delta={float(delta):g} bounds "
                          f"the monitor's false-alarm rate {what}; {fix}", UserWarning, stacklevel=2)
        etas = {}
        for name in self.names:
            padded, lengths = to_padded(raw[name], decision_ends)
            etas[name] = windowed_sum(padded, self.windows[name], lengths, name=f"calibration scores of {name!r}")
        if joint:
            if self.rule == "single":
                raise ValueError("joint calibration shares one height between several indicators; this monitor has a single score")
            thresholds = fit_joint(kind, etas, lengths, delta, rule=self.rule, **options)
        else:
            thresholds = {n: fit_threshold(kind, eta, lengths, delta=delta, **options) for n, eta in etas.items()}
        self.set_thresholds(thresholds)
        self.threshold_type, self.joint = kind, joint
        return thresholds
