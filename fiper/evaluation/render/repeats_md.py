"""repeats.md and repeats.json: the summary over split seeds (repeats.py) and the paired tables (paired.py)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from fiper.atomic import write_atomic
from fiper.evaluation.paired import (
    PAIRED_FIELDS,
    mean_over_tasks,
    paired_to_baselines,
    paired_to_best_other,
    paired_to_references,
    select_against_members,
)
from fiper.evaluation.repeats import SUMMARY_FIELDS
from fiper.evaluation.render.text import METRIC_TEXT


def repeats_markdown(rows: Sequence[dict[str, Any]], baselines: Sequence[str] = (), references: Sequence[str] = (),
                     criterion: str = "accuracy_twa", selects: Mapping[str, Sequence[str]] | None = None) -> str:
    """Per task, methods by mean accuracy, the best guaranteed accuracy and TWA in bold; then the
    paired tables (against the best other method, with ``baselines`` against the best of those, and
    with ``references`` every method's margin over the best reference, per task and over tasks), and with
    ``selects`` (select method: its members) how each select's choice compares with its members on test."""
    lines = ["# Evaluation over repeated splits", ""]
    for task in sorted({r["task"] for r in rows}):
        mine = sorted((r for r in rows if r["task"] == task), key=lambda r: (not r["guaranteed"], -(r["accuracy_mean"] or 0.0)))
        guaranteed = [r for r in mine if r["guaranteed"]] or mine
        best = {f: max((r[f"{f}_mean"] for r in guaranteed if r[f"{f}_mean"] is not None), default=None) for f in ("accuracy", "twa")}
        n = mine[0]["repeats"]
        lines += [f"## {task}: {n} split seeds, mean ± sd of the mean over {mine[0]['n_deltas']} δ", "",
                  "| method | threshold | guaranteed | Acc | TWA | AUROC | TPR | TNR | FAR-ID | records with FAR > δ + 3 SE |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in mine:
            cells = []
            for f in SUMMARY_FIELDS:
                text = "–" if r[f"{f}_mean"] is None else f"{r[f'{f}_mean']:.3f} ± {r[f'{f}_sd']:.3f}"
                cells.append(f"**{text}**" if r["guaranteed"] and f in best and r[f"{f}_mean"] == best[f] else text)
            lines.append(f"| {r['method']} | {r['threshold_type']} | {'yes' if r['guaranteed'] else 'no'} | "
                         + " | ".join(cells) + f" | {r['far_over']} |")
        lines.append("")
    if any(r["repeats"] > 1 for r in rows):
        lines += paired_markdown(rows, baselines, references, criterion)
        lines += select_markdown(select_against_members(rows, selects or {}, criterion))
    return "\n".join(lines)


def write_repeats(rows: Sequence[dict[str, Any]], seeds: Sequence[int], out_dir: str | os.PathLike,
                  baselines: Sequence[str] = (), references: Sequence[str] = (), criterion: str = "accuracy_twa",
                  selects: Mapping[str, Sequence[str]] | None = None) -> dict[str, Path]:
    """repeats.json (the rows, the seeds, the paired differences and each select against its members) and
    repeats.md in ``out_dir``; ``criterion`` picks the best reference and scores the selects (the evaluation's
    selection criterion)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"repeats_json": out / "repeats.json", "repeats_md": out / "repeats.md"}
    paired = [p for f in PAIRED_FIELDS for p in paired_to_best_other(rows, f)]
    vs_baselines = [p for f in PAIRED_FIELDS for p in paired_to_baselines(rows, f, baselines)]
    vs_references = [p for f in PAIRED_FIELDS for p in paired_to_references(rows, f, references, criterion)]
    ran = {r["method"] for r in rows}  # a method no task could run (a camera reference on low-dim stores) is not listed
    doc = {"seeds": list(seeds), "rows": list(rows), "paired": paired, "baselines": [b for b in baselines if b in ran],
           "paired_vs_baselines": vs_baselines, "references": [r for r in references if r in ran], "paired_vs_references": vs_references,
           "paired_vs_references_mean_over_tasks": mean_over_tasks(vs_references),
           "select_vs_members": select_against_members(rows, selects or {}, criterion)}
    write_atomic(paths["repeats_json"], json.dumps(doc, indent=1, allow_nan=False))
    write_atomic(paths["repeats_md"], repeats_markdown(rows, baselines, references, criterion, selects))
    return paths


def _descending(value: float | None) -> float:
    """Sort key: largest first, undefined last."""
    return math.inf if value is None else -value


def paired_markdown(rows: Sequence[dict[str, Any]], baselines: Collection[str] = (), references: Collection[str] = (),
                    criterion: str = "accuracy_twa") -> list[str]:
    """Per task, one line per guaranteed row: its Acc and TWA lead (or gap) to the best other
    method's row; with ``baselines``, a second table: every other method against the best baseline row;
    with ``references``, every other method's deployable row against the best reference's (report.md's
    margin), per task and averaged over tasks."""
    lines = _paired_table({f: paired_to_best_other(rows, f) for f in PAIRED_FIELDS}, "best other",
                          "the best other method's guaranteed row", "the best guaranteed row of another method")
    if baselines:
        lines += _paired_table({f: paired_to_baselines(rows, f, baselines) for f in PAIRED_FIELDS}, "best baseline",
                               "the best baseline row", f"the best guaranteed row of the baselines ({', '.join(baselines)})")
    if references:
        vs = {f: paired_to_references(rows, f, references, criterion) for f in PAIRED_FIELDS}
        what = (f"the deployable row of the best reference ({', '.join(references)}; highest {METRIC_TEXT[criterion]}, averaged over the split seeds); "
                "each method's deployable row: its type chosen on validation")
        lines += _paired_table(vs, "best reference", "the best reference row (what the monitor adds)", what)
        lines += _paired_table({f: mean_over_tasks(vs[f]) for f in PAIRED_FIELDS}, "best reference",
                               "the best reference row, averaged over tasks", f"{what}, averaged over the tasks per split")
    return lines


def _se_text(se: float | None) -> str:
    return "" if se is None else f" ± {se:.3f}"


def select_markdown(against: Sequence[dict[str, Any]]) -> list[str]:
    """Per task, each select's test criterion against its members': did the choice made on validation transfer?"""
    lines = []
    for task in sorted({a["task"] for a in against}):
        mine = [a for a in against if a["task"] == task]
        lines += [f"## {task}: each select against its members on test (did the choice on validation transfer?)", "",
                  f"Test {METRIC_TEXT[mine[0]['criterion']]} (the selection criterion), mean over split seeds; the select's "
                  "deployable row minus the member best in hindsight (highest mean over the splits: what deploying that "
                  "member alone would have given) and minus each split's best member (an oracle no validation reaches), "
                  "mean ± SE over the splits.", "",
                  "| select | its test value | best member in hindsight | select − it | ahead / behind | select − each split's best |",
                  "|---|---|---|---|---|---|"]
        for a in mine:
            lines.append(f"| {a['method']} | {a['select']:.3f} | {a['best_member']} ({a['members'][a['best_member']]:.3f}) | "
                         f"{a['vs_best_mean']:+.3f}{_se_text(a['vs_best_se'])} | {a['ahead']} / {a['behind']} | "
                         f"{a['vs_split_best_mean']:+.3f}{_se_text(a['vs_split_best_se'])} |")
        lines.append("")
    return lines


def _paired_table(paired: dict[str, list[dict[str, Any]]], short: str, title: str, what: str) -> list[str]:
    """Per task, one markdown table of the paired differences (per field) of each row."""
    pairs = {f: {(p["task"], p["method"], p["threshold_type"]): p for p in paired[f]} for f in PAIRED_FIELDS}
    lines = []
    for task in sorted({k[0] for k in pairs["accuracy"]}):
        order = sorted((k for k in pairs["accuracy"] if k[0] == task), key=lambda k: _descending(pairs["accuracy"][k]["diff_mean"]))
        lines += [f"## {task}: paired over splits, difference to {title}", "",
                  f"Mean ± SE over split seeds of (this row − {what}), and on how many "
                  "splits this row was ahead. A lead within about 2 SE of zero is split noise.", "",
                  f"| method | threshold | Acc − {short} | ahead | TWA − {short} | ahead |", "|---|---|---|---|---|---|"]
        for key in order:
            cells = []
            for f in PAIRED_FIELDS:
                p = pairs[f].get(key)
                if p is None or p["diff_mean"] is None:
                    cells += ["–", "–"]
                    continue
                cells += [f"{p['diff_mean']:+.3f}{_se_text(p['diff_se'])} vs {p['reference']}", f"{p['ahead']}/{p['n']}"]
            lines.append(f"| {key[1]} | {key[2]} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines
