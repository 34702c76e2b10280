"""The outcome sweep's outputs: the terminal table, outcome.md, outcome.json, outcome.png, and the section an
evaluation's report.md gets when a pipeline acts on its deployed monitor.

They render a ``fiper.evaluation.outcome.OutcomeReport`` and compute nothing of their own. The column
definitions (``COLUMNS``) are the one text shared by the terminal table, the markdown and the glossary.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from fiper.atomic import replacing, write_atomic
from fiper.control.outcome import DAMAGE, OUTCOMES, SAFE_STOP, SUCCESS, TIMEOUT, ResponseOutcome
from fiper.evaluation.outcome import OutcomeReport
from fiper.evaluation.render.metrics_json import json_safe
from fiper.evaluation.render.text import table

FORMAT = "fiper-outcome/1"
WITHOUT = "without fiper"
OUTCOME_COLORS = {SUCCESS: "tab:green", SAFE_STOP: "tab:blue", TIMEOUT: "silver", DAMAGE: "tab:red"}


def _num(value: float, digits: int = 1) -> str:
    return "–" if not math.isfinite(value) else f"{value:.{digits}f}"


def _sig(value: float) -> str:
    return "–" if not math.isfinite(value) else f"{value:.3g}"


def _of(part: int, whole: int) -> str:
    return f"{part} of {whole}"


def _reward(r: ResponseOutcome) -> str:
    """Paired difference of the steering reward ± its SE; empty for a response without a reward."""
    got = r.reward
    if got is None:
        return ""
    if got.note:
        return "not evaluated"
    se = f"{got.se:.2g}" if math.isfinite(got.se) else "–"  # one episode: no SE
    return f"{got.difference:+.3g} ± {se}" if got.episodes else "–"


REWARD = "steering reward Δ ± SE"
# (header, cell text of a response's row, definition); the row without fiper fills only the outcome columns
COLUMNS: tuple[tuple[str, Callable[[ResponseOutcome], str], str], ...] = (
    ("episodes", lambda r: str(r.episodes), "episodes run with the response and, on the same shift, severity and seed, without fiper"),
    ("success", lambda r: str(r.outcomes[SUCCESS]), "the task succeeded"),
    ("safe stop", lambda r: str(r.outcomes[SAFE_STOP]),
     "the fallback took over after an alarm and no physical failure followed (the episode ran out of time stopped)"),
    ("damage", lambda r: str(r.outcomes[DAMAGE]), "a physical failure (dropped, obstacle collision, off the table, ...)"),
    ("timeout", lambda r: str(r.outcomes[TIMEOUT]), "ran out of time without a stop (no alarm, or steering that never finished)"),
    ("physical → success / safe stop", lambda r: f"{r.physical_to_success} / {r.physical_to_safe_stop} of {r.would_be_physical}",
     "would-be physical failures (damage without fiper) the response turned into a success / a safe stop"),
    ("timeout → success / safe stop", lambda r: f"{r.timeout_to_success} / {r.timeout_to_safe_stop} of {r.would_be_timeout}",
     "would-be timeouts turned into a success / a safe stop"),
    ("successes lost", lambda r: _of(r.successes_lost, r.successes_without),
     "successes without fiper that were not successes with the response: the nominal cost"),
    ("false-alarm stops", lambda r: str(r.false_alarm_stops), "successes without fiper that the response stopped safely"),
    ("damage added", lambda r: str(r.damage_added), "physical failures with the response on seeds that had none without fiper"),
    ("alarm before onset", lambda r: _of(r.alarmed_before_onset, r.with_onset),
     "would-be physical failures whose alarm (in the run with the response) came strictly before the onset of the failure "
     "the run without fiper had"),
    ("early alarm → success / safe stop", lambda r: _of(r.early_saved, r.alarmed_before_onset),
     "of the would-be physical failures alarmed before onset, the ones the response ended as a success or a safe stop: "
     "what acting on an early alarm achieved"),
    ("warning (decisions / s)", lambda r: f"{_num(r.median_warning_decisions)} / {_num(r.median_warning_s)}",
     "median over those of (onset − alarm), in decisions and in seconds (env steps × the store's control period)"),
    ("cost / decision", lambda r: f"{_num(r.cost_ratio, 2)}×" + (f" ({_num(r.steered_cost_ratio, 2)}× steered)" if r.steered_decisions else ""),
     "median time of a decision with the response over that of an unmonitored decision, both timed in the sweep; in "
     "brackets the same for the decisions it steered alone"),
    (REWARD, _reward,
     "for a response that steers with a reward: that reward program scored on the chunks both runs executed at the same "
     "env steps (lifted as steering lifts them; decisions a fallback took over executed none), averaged per episode; the "
     "mean over the paired episodes of (with the response − without fiper) and its standard error over them. Higher is better; a built-in "
     "keep-out reward is 0 outside the zone and minus the summed penetration depth (env units) inside. Empty for a "
     "response without a reward"),
)


# shorter headers for the terminal; outcome.md spells them out and defines them
TERMINAL = {"physical → success / safe stop": "physical→ok/stop", "timeout → success / safe stop": "timeout→ok/stop",
            "successes lost": "lost", "false-alarm stops": "false stops", "alarm before onset": "early", "early alarm → success / safe stop": "early→ok/stop",
            "warning (decisions / s)": "warning d/s", "cost / decision": "cost", REWARD: "reward Δ"}


def _without_row(counts: dict[str, int]) -> list[str]:
    outcomes = [str(counts[o]) for o in OUTCOMES]
    return [WITHOUT, str(sum(counts.values())), *outcomes] + [""] * (len(COLUMNS) - 1 - len(OUTCOMES))


def _rows(without: dict[str, int], results: dict[str, ResponseOutcome]) -> list[list[str]]:
    return [_without_row(without)] + [[name, *(cell(res) for _, cell, _ in COLUMNS)] for name, res in results.items()]


def outcome_table(report: OutcomeReport) -> str:
    """The overall table as aligned text for the terminal."""
    header = ["response", *(TERMINAL.get(h, h) for h, _, _ in COLUMNS)]
    rows = _rows(report.without, report.overall)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    period = f"{report.control_period_s:g} s per env step" if math.isfinite(report.control_period_s) else "control period unknown"
    head = f"outcome sweep on {report.task or 'the task'}: {len(report.cells)} cells x {report.seeds} seeds, {period}"
    return "\n".join([head, line(header), "-" * len(line(header)), *(line(r) for r in rows), *_warnings(report)]) + "\n"


def _warnings(report: OutcomeReport) -> list[str]:
    notes = [f"note: the steering reward of '{name}' was not evaluated: {r.reward.note}"
             for name, r in report.overall.items() if r.reward is not None and r.reward.note]
    return notes + [f"warning: {r.diverged} of {r.episodes} episodes of '{name}' executed other actions than the run without fiper "
            "before the response acted, so their pairing does not isolate the response (a nondeterministic encode or "
            "sample? docs/adapters.md, \"Checking an adapter\")"
            for name, r in report.overall.items() if r.diverged]


def _bold(line: str) -> str:
    kind, _, text = line.partition(": ")
    return f"**{kind.capitalize()}:** {text}"


def _reward_table(report: OutcomeReport) -> list[str]:
    """outcome.md's table of the steering rewards: every response that steers with one, over all cells."""
    rows = [[name, f"`{g.reward}`", str(g.episodes), str(g.decisions), _sig(g.mean),
             _sig(g.mean_without), _reward(r)] for name, r in report.overall.items() if (g := r.reward) is not None]
    if not rows:
        return []
    header = ["response", "reward program", "paired episodes", "decisions scored in both runs",
              "mean reward with", "mean reward without", REWARD]
    return ["### Steering reward on the executed chunks", "", *table(header, rows), ""]


def _cell(cell: tuple[str, float]) -> str:
    return "none" if cell[0] == "none" else f"{cell[0]} {cell[1]:g}"


def outcome_markdown(report: OutcomeReport, plot: str | None = None) -> str:
    """outcome.md: the overall table, the per-cell tables, the column definitions and the stores read."""
    period = f"{report.control_period_s:g} s per env step" if math.isfinite(report.control_period_s) else \
        "unknown (warnings in seconds are not reported)"
    header = ["response", *(h for h, _, _ in COLUMNS)]
    out = [f"# What acting on an alarm achieves: {report.task or 'task'}", "",
           f"{len(report.cells)} cells (shift, severity) × {report.seeds} seeds; every response runs the same seeds as the run "
           f"without fiper. Control period: {period}.", "", "## All cells", "",
           *table(header, _rows(report.without, report.overall)), ""]
    out += [_bold(w) for w in _warnings(report)]
    out += _reward_table(report)
    if plot:
        out += [f"![outcomes]({plot})", ""]
    out += ["## Per cell", ""]
    short = ["cell", "response", "episodes", "success", "safe stop", "damage", "timeout", "physical → success / safe stop",
             "timeout → success / safe stop", "successes lost", REWARD]
    keep = [i for i, (h, _, _) in enumerate(COLUMNS) if h in short]
    rows = []
    for cell in report.cells:
        rows.append([_cell(cell), *_without_row(report.without_per_cell[cell])[:1 + len(OUTCOMES) + 1]] + [""] * (len(short) - 3 - len(OUTCOMES)))
        for name, res in report.per_cell[cell].items():
            rows.append(["", name, *(COLUMNS[i][1](res) for i in keep)])
    out += [*table(short, rows), "", "## Columns", ""]
    out += [f"- **{h}**: {d}." for h, _, d in COLUMNS]
    out += ["", "Outcomes: docs/interventions.md (\"Outcome sweep\"). Stores read:", ""]
    out += [f"- {name}: `{path}`" for name, path in report.stores.items()]
    return "\n".join(out) + "\n"


def outcome_document(report: OutcomeReport) -> dict[str, Any]:
    """outcome.json: every count of the report, overall and per cell (NaN as null)."""
    return json_safe({
        "format": FORMAT, "task": report.task, "control_period_s": report.control_period_s,
        "cells": [list(c) for c in report.cells], "seeds": report.seeds, "stores": report.stores,
        "without": report.without,
        "overall": {name: asdict(res) for name, res in report.overall.items()},
        "per_cell": [{"shift": c[0], "severity": c[1], "without": report.without_per_cell[c],
                      "responses": {name: asdict(res) for name, res in report.per_cell[c].items()}} for c in report.cells],
    })


def plot_outcome(report: OutcomeReport, path: str | os.PathLike) -> Path:
    """outcome.png: per response (and without fiper) the share of each outcome, and the would-be failures turned
    into a success or a safe stop next to the successes lost."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = [WITHOUT, *report.overall]
    counts = [report.without, *(r.outcomes for r in report.overall.values())]
    height = 0.45 * len(names) + 1.6
    fig = Figure(figsize=(11, height))
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    y = np.arange(len(names))[::-1]
    start = np.zeros(len(names))
    for outcome in OUTCOMES:
        share = np.array([c[outcome] / max(sum(c.values()), 1) for c in counts])
        left.barh(y, share, left=start, color=OUTCOME_COLORS[outcome], label=outcome.replace("_", " "))
        start += share
    left.set_yticks(y, names)
    left.set_xlim(0, 1)
    left.set_xlabel("share of episodes")
    left.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=4, fontsize=8, frameon=False)
    res = list(report.overall.values())
    ry = np.arange(len(res))[::-1]
    saved = np.array([r.physical_to_success + r.physical_to_safe_stop + r.timeout_to_success + r.timeout_to_safe_stop for r in res])
    would = np.array([max(r.would_be_physical + r.would_be_timeout, 1) for r in res])
    lost = np.array([r.successes_lost / max(r.successes_without, 1) for r in res])
    right.barh(ry + 0.2, saved / would, height=0.4, color="tab:blue", label="would-be failures → success or safe stop")
    right.barh(ry - 0.2, lost, height=0.4, color="tab:orange", label="successes lost")
    right.set_yticks(ry, list(report.overall))
    right.set_xlim(0, 1)
    right.set_xlabel("share")
    right.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=1, fontsize=8, frameon=False)
    fig.suptitle(f"acting on alarms: {report.task or 'task'} ({len(report.cells)} cells x {report.seeds} seeds)", fontsize=10)
    fig.subplots_adjust(left=0.14, right=0.98, bottom=0.55 / height, top=1 - 0.95 / height, wspace=0.45)
    path = Path(path)
    with replacing(path) as tmp:
        fig.savefig(tmp, dpi=110)
    return path


def write_outcome(report: OutcomeReport, out_dir: str | os.PathLike, *, plot: bool = True) -> dict[str, Path]:
    """Write outcome.json, outcome.md and (unless ``plot=False``) outcome.png into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "outcome.json", "markdown": out / "outcome.md"}
    if plot:
        paths["plot"] = plot_outcome(report, out / "outcome.png")
    write_atomic(paths["json"], json.dumps(outcome_document(report), indent=1, allow_nan=False))
    write_atomic(paths["markdown"], outcome_markdown(report, "outcome.png" if plot else None))
    return paths


SECTION = "What acting on the alarm achieved"


def outcome_section(report: OutcomeReport, *, source: str, videos: dict[str, str] | None = None) -> str:
    """The markdown section of report.md: the overall table, where the full tables are (``source``) and the videos
    (response -> link), one per response that alarmed."""
    header = ["response", *(h for h, _, _ in COLUMNS)]
    cells = ", ".join(_cell(c) for c in report.cells)
    out = [f"## {SECTION}", "",
           f"The deployed monitor in the control loop (`launch.act`): {len(report.cells)} cells ({cells}) × {report.seeds} seeds, "
           "each run without fiper and with the monitor under each response, paired by seed. Per-cell tables and the "
           f"column definitions: `{source}`.", "", *table(header, _rows(report.without, report.overall)), ""]
    out += [_bold(w) for w in _warnings(report)]
    if videos:
        out += ["Videos (each response's first alarmed episode, re-run):", "", *(f"- {n}: [{Path(p).name}]({p})" for n, p in videos.items()), ""]
    return "\n".join(out)


def put_section(path: str | os.PathLike, text: str | None, heading: str = SECTION) -> None:
    """Replace the ``## heading`` section of the markdown file at ``path`` with ``text`` (appended when absent,
    removed when ``text`` is None): rewriting it twice gives the same file."""
    path = Path(path)
    if text is None and not path.exists():
        return
    lines = path.read_text().split("\n")
    start = next((i for i, line in enumerate(lines) if line == f"## {heading}"), None)
    if start is not None:
        end = next((j for j in range(start + 1, len(lines)) if lines[j].startswith("## ") or lines[j].startswith("# ")), len(lines))
        lines = lines[:start] + lines[end:]
    body = "\n".join(lines).rstrip("\n") + "\n"
    if text is not None:
        body += "\n" + text.strip("\n") + "\n"
    write_atomic(path, body)  # a kill while rewriting leaves the report as it was, never cut short
