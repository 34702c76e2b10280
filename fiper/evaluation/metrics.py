"""Evaluation metrics of a failure monitor, exactly as docs/method.md §7 (see docs/metrics.md).

Inputs are per-rollout arrays over the E evaluated rollouts. ``first_alarm`` may carry leading
grid dimensions (..., E) -- one row per delta or window -- and every metric then has that grid
shape. Undefined rates (no failures, no successes, no true positives, ...) are NaN, never an
error.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from fiper.evaluation.ranking import auroc

GROUPS = ("success_id", "success_ood", "fail_id", "fail_ood")


def _ratio(num, den) -> np.ndarray:
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _out(x):
    """0-d arrays become plain floats/ints so single-delta results read naturally."""
    x = np.asarray(x)
    return x.item() if x.ndim == 0 else x


def _labels(values, num: int, name: str, dtype=bool) -> np.ndarray:
    arr = np.asarray(values)
    if arr.shape != (num,):
        raise ValueError(f"{name} must have one entry per rollout, shape ({num},), got {arr.shape}")
    return arr.astype(dtype)


def _first_alarm(first_alarm, lengths=None) -> np.ndarray:
    fa = np.asarray(first_alarm)
    if fa.ndim == 0 or (fa.size and not np.issubdtype(fa.dtype, np.integer)):
        raise ValueError(f"first_alarm must be an integer array (..., E) with -1 for no alarm, got {fa.dtype} {fa.shape}")
    fa = fa.astype(np.int64)
    if fa.size and fa.min() < -1:
        raise ValueError(f"first_alarm holds {fa.min()}; use -1 for 'no alarm' and decision indices otherwise")
    if lengths is not None:
        lens = _labels(lengths, fa.shape[-1], "lengths", np.int64)
        late = fa >= lens
        if late.any():
            i = int(np.argwhere(late)[0][-1])
            raise ValueError(f"rollout {i} alarms at decision {fa[..., i].max()} but has only {lens[i]} decisions")
    return fa


@dataclass(frozen=True)
class DetectionMetrics:
    """Confusion counts and the published rates; fields are floats or grid-shaped arrays."""

    n_fail: int
    n_succ: int
    tp: object
    fn: object
    tn: object
    fp: object
    tpr: object
    tnr: object
    accuracy: object  # balanced accuracy (TPR + TNR) / 2
    dt: object  # mean over true positives of first_alarm / (max_decisions - 1)
    twa: object  # 1/2 [ (1/N_fail) sum_TP (1 - DT_i) + TN / N_succ ]
    max_decisions: int

    def as_dict(self) -> dict:
        return asdict(self)


def detection_metrics(first_alarm, failed, lengths, max_decisions: int | None = None) -> DetectionMetrics:
    """TPR, TNR, balanced accuracy, DT and TWA from per-rollout first alarms.

    ``max_decisions`` defaults to the longest evaluated rollout, ``max(lengths)`` (the published
    normaliser); pass the task's episode limit in decisions to normalise by that instead.
    """
    fa = _first_alarm(first_alarm, lengths)
    num = fa.shape[-1]
    fail = _labels(failed, num, "failed")
    lens = _labels(lengths, num, "lengths", np.int64)
    if max_decisions is None:
        max_decisions = int(lens.max()) if num else 1
    if max_decisions < max(int(lens.max()) if num else 1, 1):
        raise ValueError(f"max_decisions={max_decisions} is shorter than the longest rollout ({lens.max()} decisions)")
    flagged = fa >= 0
    tp = (flagged & fail).sum(-1)
    tn = (~flagged & ~fail).sum(-1)
    n_fail, n_succ = int(fail.sum()), int((~fail).sum())
    dt_i = fa / (max_decisions - 1) if max_decisions > 1 else np.zeros(fa.shape)
    true_pos = flagged & fail
    dt_sum = np.where(true_pos, dt_i, 0.0).sum(-1)
    tpr, tnr = _ratio(tp, n_fail), _ratio(tn, n_succ)
    twa = 0.5 * (_ratio(np.where(true_pos, 1.0 - dt_i, 0.0).sum(-1), n_fail) + tnr)
    return DetectionMetrics(
        n_fail=n_fail,
        n_succ=n_succ,
        tp=_out(tp),
        fn=_out(n_fail - tp),
        tn=_out(tn),
        fp=_out(n_succ - tn),
        tpr=_out(tpr),
        tnr=_out(tnr),
        accuracy=_out(0.5 * (tpr + tnr)),
        dt=_out(_ratio(dt_sum, tp)),
        twa=_out(twa),
        max_decisions=int(max_decisions),
    )


@dataclass(frozen=True)
class GroupRate:
    """One cell of the four-way split: size, flagged count, flagged fraction (NaN if empty)."""

    n: int
    flagged: object
    flag_rate: object  # for success groups the false-alarm rate (1 - TNR), for fail groups the TPR


def four_way_split(first_alarm, failed, ood) -> dict[str, GroupRate]:
    """Flag rates in success-ID, success-OOD, fail-ID, fail-OOD (keys in ``GROUPS``)."""
    fa = _first_alarm(first_alarm)
    num = fa.shape[-1]
    fail, shifted = _labels(failed, num, "failed"), _labels(ood, num, "ood")
    flagged = fa >= 0
    out = {}
    for name, members in zip(GROUPS, (~fail & ~shifted, ~fail & shifted, fail & ~shifted, fail & shifted)):
        count = (flagged & members).sum(-1)
        out[name] = GroupRate(int(members.sum()), _out(count), _out(_ratio(count, members.sum())))
    return out


TIMEOUT = "timeout"  # the failure reason of an episode that ran out of time (envs/labels.py, fiper.collection)


@dataclass(frozen=True)
class LeadTime:
    """How early physical failures are announced, relative to their labelled onset; timeouts counted apart."""

    n_with_onset: int  # physical failures (reason not 'timeout') whose onset step is known (failure_step >= 0)
    n_before_onset: object  # of those, alarmed strictly before the onset env step
    fraction_before_onset: object  # n_before_onset / n_with_onset
    median_warning_s: object  # median (onset - alarm) env steps * control_period over those alarmed before onset
    median_warning_decisions: object  # median (onset decision - alarm decision) over the same failures
    n_timeout: int  # failures that ran out of time: no onset to warn of
    n_timeout_flagged: object  # of those, alarmed at any decision


def physical_onset(failed, failure_step, failure_reason=None) -> np.ndarray:
    """Onset env step of each physical failure; -1 for successes, unknown onsets and timeouts.

    A timeout's ``failure_step`` is the episode's last step, the time limit, not an event a monitor
    could warn of; ``failure_reason=None`` (not recorded) treats every failure as physical.
    """
    fail = np.asarray(failed, dtype=bool)
    onset = np.where(fail, np.asarray(failure_step, dtype=np.int64), -1)
    if failure_reason is not None:
        onset = np.where(np.asarray(failure_reason).astype(str) == TIMEOUT, -1, onset)
    return onset


def alarmed_before_onset(alarm_step, onset) -> np.ndarray:
    """The one definition of an early alarm: an alarm (env step >= 0) strictly before a known onset (>= 0).

    An alarm at the onset step itself gives no warning. ``alarm_step`` may carry grid dimensions (..., E).
    """
    alarm_step, onset = np.asarray(alarm_step), np.asarray(onset)
    return (onset >= 0) & (alarm_step >= 0) & (alarm_step < onset)


def decision_env_steps(env_steps, first_alarm: np.ndarray) -> np.ndarray:
    """Env step of each rollout's first alarm: ``env_steps`` (E, T) per decision, or an int
    (env steps per decision, i.e. n_action_steps, decision k at env step k * n)."""
    if np.ndim(env_steps) == 0:
        per = int(env_steps)
        if per < 1:
            raise ValueError(f"env steps per decision must be >= 1, got {env_steps}")
        return first_alarm * per
    table = np.asarray(env_steps)
    num = first_alarm.shape[-1]
    if table.ndim != 2 or table.shape[0] != num:
        raise ValueError(f"env_steps must be (E, T) with E={num} rollouts, or an int, got shape {table.shape}")
    if first_alarm.size and first_alarm.max() >= table.shape[1]:
        raise ValueError(f"an alarm at decision {first_alarm.max()} lies past env_steps' {table.shape[1]} columns")
    return table[np.arange(num), np.maximum(first_alarm, 0)]


def onset_decision(env_steps, onset: np.ndarray) -> np.ndarray:
    """Decision index during whose chunk each onset env step falls (the last decision at or before it); -1 without onset."""
    if np.ndim(env_steps) == 0:
        return np.where(onset >= 0, onset // max(int(env_steps), 1), -1)
    table = np.asarray(env_steps)
    started = (table >= 0) & (table <= onset[:, None])
    return np.where(onset >= 0, started.sum(-1) - 1, -1)


def _median(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Median over the last axis of the finite entries (NaN elsewhere); NaN where ``counts`` is 0."""
    with np.errstate(all="ignore"):
        sorted_v = np.sort(values, axis=-1)  # NaN sort last
        lo = np.maximum((counts - 1) // 2, 0)
        hi = np.maximum(counts // 2, 0)
        med = 0.5 * (np.take_along_axis(sorted_v, lo[..., None], -1) + np.take_along_axis(sorted_v, hi[..., None], -1))[..., 0]
    return np.where(counts > 0, med, np.nan)


def lead_time(first_alarm, failed, failure_step, env_steps, control_period: float, failure_reason=None) -> LeadTime:
    """Fraction of physical failures alarmed strictly before their onset and the median warning.

    ``failure_step`` (E,) is the env step of the irrecoverable event (-1: none / unknown);
    ``failure_reason`` (E,) labels timeouts, which get their own counts (``physical_onset``);
    ``control_period`` is seconds per env step (NaN: unknown, warnings in seconds are NaN).
    """
    fa = _first_alarm(first_alarm)
    num = fa.shape[-1]
    fail = _labels(failed, num, "failed")
    steps = _labels(failure_step, num, "failure_step", np.int64)
    reasons = None if failure_reason is None else _labels(failure_reason, num, "failure_reason", str)
    period = float(control_period)
    if not (np.isnan(period) or (np.isfinite(period) and period > 0)):
        raise ValueError(f"control_period must be a positive number of seconds per env step (NaN: unknown), got {control_period}")
    onset = physical_onset(fail, steps, reasons)
    eligible = onset >= 0
    alarm_step = np.where(fa >= 0, decision_env_steps(env_steps, fa), -1)
    early = alarmed_before_onset(alarm_step, onset)
    n_early = early.sum(-1)
    warning_s = np.where(early, (onset - alarm_step) * period, np.nan)
    warning_d = np.where(early, (onset_decision(env_steps, onset) - fa).astype(np.float64), np.nan)
    timeout = fail & (reasons == TIMEOUT) if reasons is not None else np.zeros(num, dtype=bool)
    return LeadTime(int(eligible.sum()), _out(n_early), _out(_ratio(n_early, eligible.sum())),
                    _out(_median(warning_s, n_early)), _out(_median(warning_d, n_early)),
                    int(timeout.sum()), _out(((fa >= 0) & timeout).sum(-1)))


def metric_summary(
    first_alarm,
    max_ratio,
    failed,
    lengths,
    *,
    ood=None,
    failure_step=None,
    env_steps=None,
    control_period: float | None = None,
    max_decisions: int | None = None,
    failure_reason=None,
) -> dict:
    """All section-7 metrics in one flat dict (one delta, or grid arrays when batched).

    The four-way split needs ``ood``; lead time needs ``failure_step``, ``env_steps`` and
    ``control_period`` (and ``failure_reason`` to count timeouts apart); AUROC needs ``max_ratio`` (None for recorded alarms without their
    scores); the corresponding keys are omitted when those are not given.
    """
    report = detection_metrics(first_alarm, failed, lengths, max_decisions).as_dict()
    if max_ratio is not None:
        report["auroc"] = auroc(max_ratio, failed)
    if ood is not None:
        for name, cell in four_way_split(first_alarm, failed, ood).items():
            report[f"{name}_n"] = cell.n
            report[f"{name}_flagged"] = cell.flagged
            report[f"{name}_flag_rate"] = cell.flag_rate
    if failure_step is not None and env_steps is not None and control_period is not None:
        lt = lead_time(first_alarm, failed, failure_step, env_steps, control_period, failure_reason)
        report.update({f"lead_{k}": v for k, v in asdict(lt).items()})
    return report
