"""Checks of a store another recorder wrote, before anything is scored: each mistake such a recorder makes
(labels as text, axes swapped, steps counted wrongly, a broken embedding, an onset past its episode) named
with its fix instead of scores computed from misread rows."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from fiper.evaluation.metrics import TIMEOUT
from fiper.monitor.decision_data import response_acted, response_acted_text
from fiper.storage import EpisodeStore


class RolloutError(ValueError):
    """A rollout store cannot be evaluated (missing keys, mismatched shapes, no episodes)."""


#: Shift labels another recorder may mean as "in distribution"; only 'none' is, so these are named in the notes.
ID_SPELLINGS = ("none", "", "null", "nan", "id", "nominal", "in_distribution", "in-distribution")

#: Failure reasons another recorder may mean as "ran out of time" (lower case, letters and digits only); only
#: metrics.TIMEOUT is, so the others count as physical failures with an onset, and the notes name them.
TIMEOUT_SPELLINGS = ("timeout", "timedout", "timelimit", "timelimitreached", "truncated", "maxsteps", "maxstepsreached",
                     "maxepisodesteps", "outoftime", "horizon", "horizonreached")


def _lookalike_notes(path: Path, rollouts: Any) -> None:
    """A note per shift label that reads as in distribution and failure reason that reads as a timeout but is not."""
    for label in sorted({str(v) for v in rollouts.shift if str(v) != "none" and str(v).strip().lower() in ID_SPELLINGS}):
        rollouts.notes.append(f"{path.name}: meta/shift holds {label!r} on {int((rollouts.shift == label).sum())} episode(s), "
                              "counted as shifted; an in-distribution episode carries 'none' exactly")
    failed = rollouts.failure_reason[~rollouts.success]
    for label in sorted({str(v) for v in failed if str(v) != TIMEOUT and re.sub(r"[^a-z0-9]", "", str(v).lower()) in TIMEOUT_SPELLINGS}):
        rollouts.notes.append(f"{path.name}: meta/failure_reason holds {label!r} on {int((failed == label).sum())} failure(s), "
                              f"counted as physical failures with an onset at their failure_step; a failure that ran out of "
                              f"time carries {TIMEOUT!r} exactly (no onset, counted apart from the lead times)")


def _contradicted_success_notes(path: Path, rollouts: Any) -> None:
    """A note naming the successes that also carry a failure (meta/failure_step >= 0 or a failure_reason): the evaluation
    counts them as successes, which fit and calibrate the scores, and reads no onset of theirs."""
    reasons = np.char.strip(rollouts.failure_reason.astype(str))
    both = np.flatnonzero(rollouts.success & ((rollouts.failure_step >= 0) | (reasons != "")))
    if both.size:
        rollouts.notes.append(
            f"{path.name}: {both.size} episode(s) labelled meta/success true also carry a failure (meta/failure_step >= 0 or "
            f"a meta/failure_reason): episodes {both[:8].tolist()}{' ...' if both.size > 8 else ''}; they count as successes "
            "(in distribution, they may fit and calibrate the scores) and their failure labels are ignored: if they failed, "
            "set meta/success false; if they succeeded, set failure_step -1 and failure_reason ''")


def check_success_labels(store: EpisodeStore, path: Path) -> None:
    """meta/success must be bool (or 0/1 numbers): a text label such as 'False' would read as True (checked before
    the cast, which numpy < 2 refuses for text with a message that does not name the fix)."""
    values = np.asarray(store.meta("success"))
    numeric = values.dtype.kind in "biuf" and np.isin(values, (0, 1)).all()
    if values.dtype.kind != "b" and not numeric:
        raise RolloutError(
            f"{path}: meta/success holds {values.dtype} values ({values[:3].tolist()} ...), not bool; store one bool per "
            "episode (meta={'success': bool(...)}) when appending, so that no label is read as another"
        )


def check_onset_steps(store: EpisodeStore, path: Path) -> None:
    """meta/failure_step must hold whole env steps: a time in seconds or NaN would be cast to another step silently
    (checked before the cast)."""
    if "failure_step" not in store.meta_keys:
        return
    values = np.asarray(store.meta("failure_step"))
    if values.dtype.kind != "f":
        return
    bad = np.flatnonzero(~np.isfinite(values) | (values != np.round(values)))
    if bad.size:
        raise RolloutError(
            f"{path}: meta/failure_step of episode {int(bad[0])} is {values[bad[0]]} ({bad.size} episode(s) like it), not a "
            "whole env step; it is the env step within its episode (0 .. its steps - 1) of the irrecoverable event, -1 when "
            "there is none: a time in seconds divided by the control period and rounded gives it"
        )


def check_no_response(store: EpisodeStore, path: Path) -> None:
    """A store with episodes in which a response acted is refused: a hold that runs out the clock is a failure every
    alarm "detects", so detection measured on them says nothing of a monitor's."""
    acted = response_acted(store)
    if acted.size:
        raise RolloutError(response_acted_text(store, acted, "their outcome is the response's, not the policy's, and the "
                                             "live monitor's alarms chose them, so no detection can be measured on them"))


def check_store_rows(store: EpisodeStore, path: Path, rollouts: Any) -> None:
    """Shapes and labels of one store's RolloutSet ``rollouts`` (fiper.evaluation.rollouts), read from ``store``."""
    check_no_response(store, path)
    _lookalike_notes(path, rollouts)
    _contradicted_success_notes(path, rollouts)
    emb, samples = rollouts.embeddings, rollouts.samples
    if emb is not None and emb.ndim != 2:
        raise RolloutError(f"{path}: decisions/embedding has per-decision shape {emb.shape[1:]}; it must be (N, D): one "
                           "flat embedding vector per decision")
    if emb is not None and not np.isfinite(emb).all():
        bad = np.flatnonzero(~np.isfinite(emb).all(axis=1))
        episodes = np.unique(np.searchsorted(rollouts.decision_ends, bad, side="right"))
        raise RolloutError(f"{path}: decisions/embedding holds NaN or inf at {bad.size} decision(s) of episode(s) "
                           f"{episodes[:8].tolist()}{' ...' if episodes.size > 8 else ''} (first: decision {int(bad[0])}); "
                           "the recorder wrote a broken embedding there: record those episodes again, or leave them out")
    if samples is not None and len(samples.shape) != 4:
        raise RolloutError(f"{path}: decisions/samples has per-decision shape {tuple(samples.shape[1:])}; it must be "
                           "(N, B, H, A): B sampled chunks of H steps of A action dims per decision")
    if samples is not None and "action" in store.data_keys:
        action = store.data_array("action")
        if len(action.shape) == 2 and samples.shape[-1] != action.shape[1]:
            raise RolloutError(
                f"{path}: decisions/samples has per-decision shape (B, H, A)={tuple(samples.shape[1:])} but data/action has "
                f"{action.shape[1]} action dims; store the sample batch with axes (N, B, H, A) (e.g. swap its axes with "
                "np.moveaxis before appending)"
            )
    lengths = store.episode_lengths
    onset = rollouts.failure_step
    past = np.flatnonzero(onset >= lengths)
    if past.size:
        i = int(past[0])
        raise RolloutError(f"{path}: meta/failure_step of episode {i} is {int(onset[i])} but the episode has {int(lengths[i])} env "
                           f"steps ({past.size} episode(s) like it); failure_step is the env step within its episode (0 .. its "
                           "steps - 1) of the irrecoverable event, -1 when there is none")
    ends = rollouts.decision_ends
    episode = np.repeat(np.arange(len(ends)), np.diff(np.concatenate([[0], ends])))
    steps_all = rollouts.env_step
    back = np.zeros(len(steps_all), dtype=bool)
    back[1:] = (np.diff(steps_all) < 0) & (episode[1:] == episode[:-1])
    wrong = (steps_all < 0) | (steps_all >= lengths[episode]) | back
    if wrong.any():
        first = int(np.argmax(wrong))
        i = int(episode[first])
        lo = int(ends[i - 1]) if i else 0
        at = first - lo
        steps = steps_all[lo + max(0, at - 2): min(lo + at + 4, int(ends[i]))]
        n_bad = len(np.unique(episode[wrong]))
        source = "decisions/env_step" if "env_step" in store.decision_keys else \
            "the env step of each decision (no decisions/env_step: decision index x n_action_steps)"
        raise RolloutError(
            f"{path}: {source} of episode {i} reads {steps.tolist()} at decisions {max(0, at - 2)}.. but the "
            f"episode has {int(lengths[i])} env steps ({n_bad} episode(s) like it); env_step is the step within its "
            "episode (0 .. its steps - 1, non-decreasing) at which each decision was taken, and every decision of an "
            "episode must belong to it: check that each episode's decisions and steps were appended together"
            + ("" if "env_step" in store.decision_keys else
               f", and that the attr n_action_steps ({store.attrs.get('n_action_steps')}) is the env steps between two "
               "decisions, or record decisions/env_step")
        )
