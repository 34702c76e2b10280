"""Shared text pieces of the renderers: number formats, row labels, markdown tables, the glossary."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fiper.evaluation.findings import Row
from fiper.evaluation.results import CHOSEN, TaskResult, TypeResult

# how the reports name a selection criterion or metric
METRIC_TEXT = {"twa": "TWA", "accuracy": "Acc", "auroc": "AUROC", "accuracy_twa": "mean of Acc and TWA"}

# (header, metric key) of the metric columns, in table order
COLUMNS = (("TWA", "twa"), ("Acc", "accuracy"), ("DT", "dt"), ("TPR", "tpr"), ("TNR", "tnr"), ("AUROC", "auroc"))

GLOSSARY = (
    ("TPR", "true-positive rate: flagged failures / failures (a rollout is flagged when it raises any alarm)"),
    ("TNR", "true-negative rate: unflagged successes / successes"),
    ("Acc", "balanced accuracy, (TPR + TNR) / 2"),
    ("DT", "detection time: first alarm / (longest episode − 1) in decisions, averaged over detected failures "
           "(0 = at the first decision, 1 = at the last; lower is earlier)"),
    ("TWA", "time-weighted accuracy, ½ [ Σ over detected failures (1 − DT) / failures + TNR ]: "
            "like Acc, but a late detection earns less than an early one"),
    ("AUROC", "area under the ROC curve of each rollout's largest score-to-threshold ratio (failures positive); "
              "no alarm level is picked for it, but the ratio is to each δ's thresholds, so it is the same at every δ only "
              "for one score under a constant threshold (a band, a time-varying threshold or several scores can move it "
              "with δ)"),
    ("FAR-ID", "false-alarm rate on in-distribution successes of the test split = 1 − their TNR; the guaranteed "
               "threshold types bound it by δ in expectation over calibration draws"),
    ("± SE", "binomial standard error of FAR-ID, √(p(1 − p)/n) with p the observed rate and n the in-distribution "
             "test successes (the FAR-ID checks below use √(δ(1 − δ)/n) instead: the spread of a rate exactly at δ)"),
    ("δ", "the calibration level: the tolerated false-alarm rate on in-distribution successes; rows average over "
          "the δ grid"),
    ("flag success-OOD", "fraction of successes under a benign shift that were flagged (false alarms under shift)"),
    ("alarm before onset", "fraction of physical failures (not timeouts) with a known onset alarmed strictly before "
                           "the failure step"),
    ("median warning s", "median seconds between that alarm and the failure step"),
    ("guaranteed", "constant and band thresholds carry the δ guarantee; time_varying does not"),
    ("chosen", "the guaranteed threshold type (constant or band) whose chosen window validated best; "
               "windows and 'select' members are chosen on validation too, never on test"),
)


def mean(values: Any) -> float:
    return float(np.mean(np.asarray(values, dtype=np.float64)))


def fmt(value: float | None, digits: int = 2) -> str:
    """``value`` to ``digits`` places; '–' where it is undefined (e.g. TNR on a split without successes)."""
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def signed(value: float | None, digits: int = 2) -> str:
    """``value`` with its sign, as margins are written; '–' where it is undefined. A value that rounds to zero at
    ``digits`` is written without a sign ('0.00', not '-0.00' or '+0.00'): no sign to read at that precision."""
    if value is None or not math.isfinite(value):
        return "–"
    text = f"{value:+.{digits}f}"
    return text[1:] if float(text) == 0 else text


def window_text(windows: dict) -> str:
    return ", ".join(f"{s}={w}" for s, w in windows.items())


def chosen_text(res: TypeResult) -> str:
    """The chosen windows, prefixed with the member a 'select' method chose."""
    return (f"{res.selected}: " if res.selected else "") + window_text(res.windows)


def kind_text(kind: str, res: TypeResult) -> str:
    """The threshold type label; the chosen row names the type it chose."""
    return f"{kind} ({res.threshold_type})" if kind == CHOSEN else kind


def row_result(task: TaskResult, row: Row) -> TypeResult:
    return task.methods[row.method].result(row.label)


def same_monitor(task: TaskResult, a: Row, b: Row) -> bool:
    """Whether two rows ran the same scores, rule, threshold type and windows (e.g. a 'select' row and its member)."""
    ra, rb = row_result(task, a), row_result(task, b)
    return (task.spec_of(a.method, a.label) == task.spec_of(b.method, b.label)
            and ra.threshold_type == rb.threshold_type and ra.windows == rb.windows)


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"] + ["| " + " | ".join(r) + " |" for r in rows]


def glossary(terms: tuple[str, ...] | None = None) -> list[str]:
    """Markdown bullet list of the column definitions (docs/metrics.md has the full ones)."""
    keep = [(t, d) for t, d in GLOSSARY if terms is None or t in terms]
    return [f"- **{t}**: {d}." for t, d in keep] + ["", "Full definitions: docs/metrics.md."]


MIN_TEST_EPISODES = 10  # failures (and successes) in the test split below which its rates move by a tenth per episode


def thin_test_warning(task: TaskResult) -> str | None:
    """A warning when the test split holds fewer than MIN_TEST_EPISODES failures or successes: every rate and margin
    then moves by more than a tenth per episode."""
    test = task.split_sizes["test"]
    failures, successes = test["fail_id"] + test["fail_ood"], test["success_id"] + test["success_ood"]
    if min(failures, successes) >= MIN_TEST_EPISODES:
        return None
    held = (f"task {task.task}'s test split holds {failures} failure{'s' * (failures != 1)} and {successes} "
            f"success{'es' * (successes != 1)}")
    if min(failures, successes) == 0:
        effect = (f"{'TNR' if successes == 0 else 'TPR'}, Acc, TWA and the margins are undefined there (–)")
    else:
        effect = (f"TPR, Acc, TWA and the margins move by {1 / failures:.2f} per failure and TNR by {1 / successes:.2f} "
                  "per success")
    return (f"{held}, so {effect}: record more rollouts (launch.stress cells whose shifts make the policy fail, more "
            "in-distribution rollouts) before reading them")


def blind_clock_note(task: TaskResult) -> str | None:
    """A note when every episode lasts as long as every other: a method reading only the clock then scores them all
    alike, so 'the best reference' is the best of the others."""
    lengths = task.rollouts.lengths
    clocks = [n for n, m in task.methods.items() if tuple(m.spec.scores) == ("elapsed",)]
    if not clocks or lengths.min() != lengths.max():
        return None
    others = [r.method for r in (task.findings.references if task.findings else ()) if r.method not in clocks]
    then = ("the best reference is the best of the others" if others else
            "a margin over it is a margin over chance: add a reference that reads something (`obs_novelty`)")
    return (f"every episode of task {task.task} lasts {int(lengths[0])} decisions, so "
            f"{', '.join(f'`{c}`' for c in clocks)} scores them all alike (balanced accuracy 0.5) and {then}; an env whose "
            "episodes do not end on success or failure gives the clock nothing to read")


def task_warnings(task: TaskResult) -> list[tuple[str, str]]:
    """(kind, text) of what to know before reading a task's rates: a thin test split, a clock with nothing to read,
    methods left out because the stores lack what they read, and what the stores' labels and attrs leave unknown (no
    shift labels: every episode counted in distribution; no onsets; no control period)."""
    found = (("warning", thin_test_warning(task)), ("note", blind_clock_note(task)), ("note", task.left_out),
             *(("note", note) for note in task.rollouts.notes))
    return [(kind, text) for kind, text in found if text]
