"""Markdown sections of report.md built from one engine result each: rollouts per stress cell,
detection per cell and per failure type, live monitors, the deploy commands and the FAR-ID checks."""

from __future__ import annotations

from typing import Any

import numpy as np

from fiper.evaluation.cells import CellCounts, four_kinds
from fiper.evaluation.deploy import deploy_commands, monitor_file_name
from fiper.evaluation.detection import DetectionTable
from fiper.evaluation.failure_types import PHYSICAL, task_failure_types
from fiper.evaluation.findings import FAR_SE_MULTIPLE, MIXED_ROWS, FarCheck
from fiper.evaluation.metrics import TIMEOUT
from fiper.evaluation.render.text import row_result
from fiper.evaluation.results import CHOSEN, TaskResult


def cells_markdown(rows: tuple[CellCounts, ...] | list[CellCounts]) -> list[str]:
    """Markdown table of the cells plus a line with the four kinds."""
    live = any(r.live_alarm is not None for r in rows)
    header = ["shift", "severity", "episodes", "success", "failure", *(["live alarm", "alarm on failures", "alarm before onset"] if live else []),
              "failure reasons"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        alarms = [str(v if v is not None else "–") for v in (r.live_alarm, r.alarmed_failures, r.alarm_before_onset)] if live else []
        reasons = ", ".join(f"{name} {n}" for name, n in r.reasons) or "–"
        lines.append("| " + " | ".join([r.shift, f"{r.severity:g}", str(r.episodes), str(r.success), str(r.failure), *alarms, reasons]) + " |")
    k = four_kinds(list(rows))
    lines += ["", f"Four kinds: success in distribution {k['success_id']}, success under shift {k['success_ood']}, "
                  f"failure in distribution {k['fail_id']}, failure under shift {k['fail_ood']}."]
    return lines


def rows_read(label: str) -> str:
    """How a detection table's rows were picked, in words."""
    if label == CHOSEN:
        return "each method's deployable row: the threshold type it chose on validation, named under its name"
    if label == MIXED_ROWS:
        return "each method's deployable row (its chosen or only guaranteed threshold type), named under its name"
    return f"{label} threshold"


def method_headers(methods: list[str], types: dict[str, str]) -> list[str]:
    """Column headers 'method<br>(type)' where the type is known."""
    return [f"{m}<br>({types[m]})" if m in types else m for m in methods]


def detection_markdown(detection: DetectionTable) -> list[str]:
    """Markdown table: one column per method, 'flagged failures / failures · flagged successes / successes'."""
    rows, kind, delta = detection.rows, detection.threshold_type, detection.delta
    if not rows:
        return []
    methods = list(rows[0].flagged_failures)
    lines = [f"Test episodes per cell alarmed by each method ({rows_read(kind)}, δ = {delta:g}): "
             "flagged failures / failures · flagged successes / successes.", "",
             "| shift | severity | " + " | ".join(method_headers(methods, detection.method_types)) + " |",
             "|" + "---|" * (len(methods) + 2)]
    for r in rows:
        cells = [f"{r.flagged_failures[m]}/{r.failures} · {r.flagged_successes[m]}/{r.successes}" for m in methods]
        lines.append(f"| {r.shift} | {r.severity:g} | " + " | ".join(cells) + " |")
    return lines


def failure_types_markdown(task: TaskResult) -> list[str]:
    """Report section: per failure reason, each method's TPR, share alarmed strictly before onset and median warning."""
    table = task_failure_types(task)
    if not table.rows:
        return ["### Detection by failure type (test)", "", "No failures in the test split.", ""]
    methods = list(table.rows[0].flagged)
    def f(v: float, spec: str = ".2f") -> str:
        return "–" if not np.isfinite(v) else format(v, spec)
    seconds = "unknown" if not np.isfinite(table.control_period_s) else f"{table.control_period_s:g} s"
    lines = ["### Detection by failure type (test)", "",
             f"The store holds {table.physical_with_onset} physical failures with a mid-episode onset (failure reason other "
             f"than {TIMEOUT}, failure_step ≥ 0), {table.physical_with_onset_test} of them in test; the warning columns stand on "
             f"those. A {TIMEOUT} has no onset to warn of: its row shows only how many were flagged. "
             f"Columns: {rows_read(table.threshold_type)}; δ = {table.delta:g}; per method: TPR · share alarmed strictly "
             "before onset · median warning in whole decisions (onset's decision − alarm's) / seconds (onset step − alarm "
             f"step, control period {seconds} per env step); an alarm in the onset's own decision warns 0 decisions ahead "
             "and a fraction of a second.", "",
             "| failure type | failures | with onset | " + " | ".join(method_headers(methods, table.method_types)) + " |",
             "|" + "---|" * (len(methods) + 3)]
    for r in table.rows:
        cells = [f"{f(r.tpr[m])} · {f(r.before_onset[m])} · {f(r.median_warning_decisions[m], 'g')} / {f(r.median_warning_s[m], '.2f')} s"
                 for m in methods]
        name = f"**{r.reason}**" if r.reason == PHYSICAL else r.reason
        lines.append(f"| {name} | {r.failures} | {r.with_onset} | " + " | ".join(cells) + " |")
    return lines + [""]


def live_markdown(results: list[dict[str, Any]]) -> list[str]:
    """Report section: one row per live monitor (nothing when no store recorded one)."""
    if not results:
        return []
    def f(v: float) -> str:
        return "–" if not np.isfinite(v) else f"{v:.2f}"
    rows = [f"| `{r['monitor']}` | {r['setting'] or '–'} | {r['episodes']} | {r['failures']} | {f(r['tpr'])} | {f(r['tnr'])} | {f(r['accuracy'])} | "
            f"{f(r['twa'])} | {f(r['far_id'])} ± {f(r['far_id_se'])} ({r['far_id_n']}) | {f(r['lead_fraction_before_onset'])} "
            f"({r['with_onset']}) | {f(r['lead_median_warning_s'])} | {r['timeouts_flagged']}/{r['timeouts']} |" for r in results]
    return ["### Live monitor (alarms recorded during the rollouts)", "",
            "Every monitored episode of the stores, all splits (the live monitor was fitted and calibrated elsewhere); "
            "same metric definitions as the rows above, at the live monitor's own δ and threshold.", "",
            "| monitor | rule, threshold | episodes | failures | TPR | TNR | Acc | TWA | FAR-ID ± SE (n) | alarmed before onset (n) | "
            "median warning s | timeouts flagged |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|", *rows, "",
            "Alarmed before onset: share of the n physical failures with an onset alarmed strictly before it; "
            "timeouts (no onset) are counted apart.", ""]


def deploy_markdown(task: TaskResult) -> list[str]:
    """Report lines: which row the deploy step writes to ``monitor_<task>.yaml`` and how to deploy it."""
    found = task.findings
    if found is None or found.deploy_method is None:
        return []
    method = found.deploy_method
    if found.deployed is None:
        return ["### Deploy", "", f"`{method}` has no guaranteed threshold type in this run: no monitor file is written.", ""]
    res = row_result(task, found.deployed)
    spec = task.spec_of(found.deployed.method, found.deployed.label)
    file = monitor_file_name(task.task)
    member = f" = `{res.selected}`" if res.selected else ""
    windows = ", ".join(f"{s}={res.window_steps[s]}" for s in spec.scores)
    return ["### Deploy", "",
            f"`launch.evaluate` writes `{file}` (`fiper.evaluation.deploy.write_monitor_files`): `{method}`{member}, "
            f"rule {spec.rule}, {res.threshold_type} threshold{' (joint)' if spec.joint else ''}, windows {windows} decisions, "
            "the score settings of this run, and its test metrics per δ. Fit and calibrate it:", "",
            "```bash", *deploy_commands(file), "```", ""]


def far_text(check: FarCheck) -> str:
    """'2/18 = 0.11 at δ = 0.05: above δ + 2 SE = 0.15' (or 'above δ, within δ + 2 SE = …')."""
    where = "above" if check.above_bound else "above δ, within"
    return f"{check.flagged}/{check.n} = {check.far:.2f} at δ = {check.delta:g}: {where} δ + {FAR_SE_MULTIPLE:g} SE = {check.bound:.2f}"


def far_meaning(n: int, above: bool = True) -> str:
    """What an excess means on one split of ``n`` in-distribution test successes, and how to check it."""
    text = (f"With {n} in-distribution test successes (none of them used for calibration), FAR-ID scatters around its "
            f"expectation by SE = √(δ(1 − δ)/{n}); the guarantee bounds the expectation over calibration draws, so a "
            "single split can exceed δ by chance")
    if not above:
        return text + "; within 2 SE this one is consistent with δ."
    return text + (", though beyond δ + 2 SE chance alone gets only about 1 check in 40. Check with repeats=5 "
                   "(`python -m launch.evaluate ... repeats=5`: repeats.md counts the records with FAR-ID > δ + 3 SE over "
                   "split seeds): an excess that persists means the calibration successes do not represent the test ones; "
                   "`refit_after_selection=true` makes the guarantee exact after the validation choices.")


def far_markdown(task: TaskResult) -> list[str]:
    """The FAR-ID checks: every guaranteed row and live monitor above δ + 2 SE, grouped per row."""
    checks = task.findings.far_above_bound() if task.findings else ()
    lines = [f"### FAR-ID above δ + {FAR_SE_MULTIPLE:g} SE", ""]
    if not checks:
        return lines + [f"No guaranteed row{' or live monitor' if task.live else ''} has FAR-ID above δ + {FAR_SE_MULTIPLE:g} SE "
                        "(SE = √(δ(1 − δ)/n), n = in-distribution test successes) at any δ.", ""]
    by_row: dict[Any, list[FarCheck]] = {}
    for c in checks:
        by_row.setdefault(c.row, []).append(c)
    for row, mine in by_row.items():
        worst = max(mine, key=lambda c: c.far - c.bound)
        name = f"live monitor `{row.method}`" if row.label == "live" else f"`{row.method}` {row.label}"
        count = "" if row.label == "live" else f" at {len(mine)} of {len(task.deltas)} δ; worst"
        lines.append(f"- **{name}**{count}: {far_text(worst)}")
    lines += ["", far_meaning(checks[0].n), ""]
    return lines
