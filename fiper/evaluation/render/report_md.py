"""report.md: per task, the deployed monitor against the best baseline and the references first
(its margin over the best reference, a glossary and why it was chosen), then the FAR-ID checks,
the full grid, the validation choices and the data."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fiper.evaluation.deploy import monitor_file_name
from fiper.evaluation.findings import WINNER_SCOPES, Margin, Row, Winner, in_scope
from fiper.evaluation.render.tables_md import (
    cells_markdown,
    deploy_markdown,
    detection_markdown,
    failure_types_markdown,
    far_markdown,
    far_meaning,
    far_text,
    live_markdown,
)
from fiper.evaluation.render.text import (
    COLUMNS,
    METRIC_TEXT,
    chosen_text,
    fmt,
    glossary,
    kind_text,
    mean,
    row_result,
    same_monitor,
    signed,
    table,
    task_warnings,
    window_text,
)
from fiper.evaluation.results import CHOSEN, EvaluationResult, TaskResult
from fiper.evaluation.select_evidence import ChoiceEvidence, select_evidence
from fiper.evaluation.splits import PARTS, STRATA

SCOPE_TEXT = {
    "guaranteed": "among guaranteed threshold types (constant, band)",
    "all": "among all threshold types",
    "chosen": "with each method's guaranteed type chosen on validation (no test-set choice)",
}
HEADLINE = [*(c for c, _ in COLUMNS), "FAR-ID ± SE"]
# what a reference reading one of these scores does, in words (docs/scores.md)
REFERENCE_TEXT = {"elapsed": "alarm once the episode outlasts (1 − δ) of the calibration successes",
                  "obs_novelty": "alarm on a raw observation far from the fit observations"}


def _metric_cells(res) -> list[str]:
    t = res.test
    return [*(fmt(mean(t[k])) for _, k in COLUMNS), f"{fmt(mean(t['far_id']))} ± {fmt(mean(t['far_id_se']))}"]


def margin_text(margin: Margin, reference_type: str | None = None) -> str:
    """'Acc +0.12, TWA +0.05 over `elapsed` (constant)': a row's margin over the best reference; a reference
    row chosen on validation is named with the type it chose ('chosen on validation: constant')."""
    label = margin.reference.label
    if label == CHOSEN and reference_type:
        label = f"{CHOSEN} on validation: {reference_type}"
    return f"Acc {signed(margin.accuracy, 3)}, TWA {signed(margin.twa, 3)} over `{margin.reference.method}` ({label})"


def margin_verdict(accuracy: float, twa: float) -> str:
    """What a margin over the best reference says, in words: ahead on both, on neither, or on one only
    (a margin that rounds to zero at three digits counts as level, not ahead)."""
    if not (math.isfinite(accuracy) and math.isfinite(twa)):
        return "undefined on this split, whose test part lacks successes or failures (see the warnings)"
    ahead = [name for name, v in (("Acc", accuracy), ("TWA", twa)) if round(v, 3) > 0]
    if len(ahead) == 2:
        return "what the monitor adds over a detector that reads nothing of the policy"
    if not ahead:
        return "it does not beat a detector that reads nothing of the policy on this split"
    other = "TWA" if ahead[0] == "Acc" else "Acc"
    return (f"ahead on {ahead[0]} only, level or behind on {other}: no clear margin over a detector that reads "
            "nothing of the policy on this split")


def _margin_line(task: TaskResult) -> list[str]:
    """The deployed row's margin over the best reference, in a sentence; says when the deployed monitor reads
    the reference's own score, and where the margin's spread over split seeds is found."""
    found = task.findings
    m = found.deployed_margin
    if m is None:
        return []
    ref = row_result(task, m.reference)
    spec = task.spec_of(m.row.method, m.row.label)
    shared = [s for s in task.spec_of(m.reference.method, m.reference.label).scores if s in spec.scores]
    reads = ""
    if shared:
        reads = f" The deployed `{spec.name}` reads the reference's own score ({', '.join(shared)})"
        reads += (", or'd with its others: the margin is what those others add to it." if spec.rule == "or" else " too.")
    return [f"**Margin over the best reference** (test, mean over δ, this split): the deployed row scores "
            f"{margin_text(m, ref.threshold_type)}: {margin_verdict(m.accuracy, m.twa)}.{reads} One split has no error bar: "
            "`repeats=5` pairs every method's margin over split seeds, mean ± SE (repeats.md).", ""]


def _headline(task: TaskResult, criterion: str) -> list[str]:
    """The deployed row, the best baseline, the references and the other methods, the deployed
    row's margin over the best reference, then the glossary."""
    found = task.findings
    entries: list[tuple[str, Row]] = []
    if found.deployed is not None:
        entries.append(("**deployed**", found.deployed))
    if found.best_baseline is not None:
        entries.append(("best baseline", found.best_baseline))
    entries += [("best reference" if r == found.best_reference else "reference", r) for r in found.references]
    entries += [("other", r) for r in found.others]
    out = ["### Deployed monitor against the best baseline and the references (test, mean over δ)", ""]
    if not entries:
        return out + ["No method has a guaranteed threshold type in this run.", ""]
    margins = {m.row: m for m in found.margins}
    extra = ["Acc − ref", "TWA − ref"] if found.best_reference is not None else []
    rows = []
    for role, row in entries:
        res = row_result(task, row)
        name = f"**{row.method}**" if role == "**deployed**" else row.method
        m = margins.get(row)
        cells = ([signed(m.accuracy), signed(m.twa)] if m is not None else ["–", "–"]) if extra else []
        rows.append([role, name + (f" = {res.selected}" if res.selected else ""), res.threshold_type, window_text(res.windows),
                     *_metric_cells(res), *cells])
    out += table(["role", "method", "threshold", "windows", *HEADLINE, *extra], rows) + [""] + _margin_line(task)
    roles = []
    if found.deploy_method is not None:
        roles.append(f"- **deployed**: `{found.deploy_method}` (config `deploy_method`), the row the deploy step writes to "
                     f"`{monitor_file_name(task.task)}`; its windows, member and threshold type were all chosen on validation."
                     if found.deployed else f"- `{found.deploy_method}` (config `deploy_method`) has no guaranteed type: nothing deployed.")
    if found.best_baseline is not None:
        roles.append(f"- **best baseline**: of the configured `baselines`, the one whose validation-chosen row has the highest test "
                     f"{METRIC_TEXT[criterion]} (the selection criterion); picked on test, so the comparison favours the baseline.")
    if found.references:
        what = "; ".join(f"`{r.method}`: {REFERENCE_TEXT[sc[0]]}" for r in found.references
                         if len(sc := task.methods[r.method].spec.scores) == 1 and sc[0] in REFERENCE_TEXT)
        roles.append("- **reference**: the configured `references`, trivial detectors that read nothing of the policy"
                     f"{f' ({what})' if what else ''}, their validation-chosen rows; the "
                     f"**best reference** (`{found.best_reference.method}`) has the highest test {METRIC_TEXT[criterion]} of them. "
                     "Acc − ref and TWA − ref: each row's test value minus the best reference's (docs/metrics.md, margin over the references).")
    if found.others:
        roles.append("- **other**: every other configured method (neither deployed, baseline nor reference), its validation-chosen row.")
    return out + roles + glossary() + [""]


def _choice_rows(choice: ChoiceEvidence) -> list[list[str]]:
    return [[f"`{o.name}`", "–" if i == 0 else f"{o.advantage:+.3f}", "–" if o.se is None else f"{o.se:.3f}",
             ", ".join(w for w, on in (("kept", o.kept), ("best on validation", o.best)) if on)]
            for i, o in enumerate(choice.options)]


def _select_evidence(task: TaskResult, criterion: str, seed: int) -> list[str]:
    """The deployed select method's evidence: each member's validation advantage over the first and its
    SE, then the same for its threshold types, and which was kept and why."""
    found = task.findings
    ev = None if found.deployed is None else select_evidence(task, found.deploy_method, criterion, seed)
    if ev is None:
        return []
    header = ["advantage over the first", "SE", "outcome"]
    rule = (f"the first is kept unless another beats it by more than {ev.members.keep_first_se:g} SE of the paired difference "
            "over stratified validation resamples" if ev.members.keep_first_se > 0 else "the best on validation is taken")
    out = ["### Why this member and threshold type (validation)", "",
           f"`{ev.method}`'s options, validation {METRIC_TEXT[criterion]} (mean over δ); {rule}. "
           "SE –: the first option itself, or none resampled because the first validates best.", "",
           *table([f"member ({ev.threshold_type or 'its type'})", *header], _choice_rows(ev.members)), "",
           f"Member: {ev.members.reason}."]
    if ev.types is not None:
        out += ["", *table(["threshold type", *header], _choice_rows(ev.types)), "", f"Threshold type: {ev.types.reason}."]
    return out + [""]


def _deployed_notes(task: TaskResult) -> list[str]:
    """FAR-ID of the deployed row above δ at some δ (within or beyond 2 SE), in words."""
    found = task.findings
    if found.deployed is None:
        return []
    res = row_result(task, found.deployed)
    mine = [c for c in found.far_checks if c.row == Row(found.deployed.method, res.threshold_type)]
    if not mine:
        return []
    worst = max(mine, key=lambda c: c.far - c.bound)
    flag = "**FAR-ID above δ + 2 SE**" if worst.above_bound else "Note"
    beyond = sum(c.above_bound for c in mine)
    others = (f" (FAR-ID above δ at {len(mine)} of {len(task.deltas)} δ, above δ + 2 SE at {beyond} of them)"
              if len(mine) > 1 else "")
    meaning = ("What one split's excess means and how to check it (repeats=5): the FAR-ID section below."
               if worst.above_bound else far_meaning(worst.n, worst.above_bound))  # the section says it once, in full
    return [f"{flag}: the deployed monitor's FAR-ID was {far_text(worst)}{others}. {meaning}", ""]


def _why(task: TaskResult, criterion: str) -> list[str]:
    """Why the deployed row differs from the test winners (or that it is one)."""
    found = task.findings
    if found.deployed is None:
        return []
    dep = row_result(task, found.deployed)
    lines = []
    for w in (w for w in found.winners if w.scope == "all"):
        if same_monitor(task, found.deployed, w.row):
            lines.append(f"- Best test {METRIC_TEXT[w.metric]} ({w.value:.3f}): the deployed configuration itself.")
            continue
        win = row_result(task, w.row)
        if mean(dep.test[w.metric]) >= w.value - 1e-12:
            lines.append(f"- Best test {METRIC_TEXT[w.metric]} ({w.value:.3f}): the deployed configuration ties "
                         f"`{w.row.method}` {kind_text(w.row.label, win)}.")
            continue
        lines.append(f"- Best test {METRIC_TEXT[w.metric]}: `{w.row.method}` {kind_text(w.row.label, win)}, {w.value:.3f} "
                     f"(deployed: {mean(dep.test[w.metric]):.3f}). On validation it scored {win.validated(criterion):.3f} "
                     f"{METRIC_TEXT[criterion]}{_against(task, w, criterion)}.")
    if not lines:
        return []
    return [f"Why this configuration: the deploy step takes `{found.deploy_method}`'s row chosen on validation "
            f"(criterion: {METRIC_TEXT[criterion]}, validation {dep.validated(criterion):.3f}); the winners below are "
            f"picked on the {int(task.split.test.size)} test episodes themselves, which no deployment can do, and "
            "validation and test differ by split noise.", "", *lines, ""]


def _against(task: TaskResult, w: Winner, criterion: str) -> str:
    found = task.findings
    deploy = task.methods[found.deploy_method]
    candidates = deploy.spec.select or (found.deploy_method,)
    if w.row.method not in candidates:
        return f"; it is not among `{found.deploy_method}`'s options ({', '.join(candidates)})"
    return ", below the deployed row's validation value" if row_result(task, w.row).validated(criterion) < row_result(task, found.deployed).validated(criterion) else ""


def _grid(task: TaskResult) -> list[str]:
    """Every method x threshold type once; the validation-chosen type is marked, not repeated."""
    header = ["method", "threshold", "guaranteed", "chosen", "windows", *HEADLINE, "flag success-OOD", "alarm before onset", "median warning s"]
    rows = []
    for name, method in task.methods.items():
        picked = method.chosen.threshold_type if method.chosen is not None else None
        for kind, res in method.types.items():
            t = res.test
            rows.append([name, kind, "yes" if res.guaranteed else "no", "✓" if kind == picked else "", chosen_text(res),
                         *_metric_cells(res), fmt(mean(t["success_ood_flag_rate"])),
                         fmt(mean(t["lead_fraction_before_onset"])), fmt(mean(t["lead_median_warning_s"]))])
    return (["### All methods × threshold types (test, mean over δ)", "",
             f"✓ marks the type each method chose on validation (the `{CHOSEN}` records of metrics.json repeat that row). "
             "–: undefined at some δ (e.g. DT without true positives); see docs/metrics.md.", ""] + table(header, rows) + [""])


def _winners(task: TaskResult) -> list[str]:
    out = ["### Winners (test, mean over δ)", ""]
    for scope in WINNER_SCOPES:
        mine = [w for w in task.findings.winners if w.scope == scope]
        if not any(in_scope(scope, k, r) for _, k, r in task.rows()):
            continue  # e.g. a single guaranteed type evaluated: nothing was chosen
        parts = [f"{METRIC_TEXT[w.metric]} → **{w.row.method}** ({kind_text(w.row.label, row_result(task, w.row))}, {w.value:.3f})" for w in mine]
        out.append(f"- {SCOPE_TEXT[scope]}: " + ("; ".join(parts) if parts else "undefined (no failures or no successes in test)"))
    return out + [""]


def _per_delta(task: TaskResult, method: str) -> list[str]:
    out = [f"### `{method}` per δ", ""]
    deployed = task.findings.deployed
    picked = row_result(task, deployed).threshold_type if deployed is not None and deployed.method == method else None
    for kind, res in task.methods[method].types.items():
        t = res.test
        rows = [[f"{d:g}", *(fmt(float(np.asarray(t[k])[i])) for _, k in COLUMNS),
                 f"{int(np.asarray(t['success_id_flagged'])[i])}/{int(t['success_id_n'])} = {fmt(float(np.asarray(t['far_id'])[i]))}"]
                for i, d in enumerate(task.deltas)]
        out += [f"{kind}{' (the deployed type)' if kind == picked else ''}, windows {chosen_text(res)}:", ""] + table(["δ", *(c for c, _ in COLUMNS), "FAR-ID"], rows) + [""]
    return out


def _period(seconds: float) -> str:
    return f"{seconds:g} s" if seconds == seconds else "unknown (warnings in seconds not reported)"


def _data(task: TaskResult) -> list[str]:
    ro = task.rollouts
    out = ["### Data", "", f"{ro.n_episodes} episodes, {int(ro.decision_ends[-1])} decisions from {len(ro.stores)} store(s); "
           f"control period {_period(ro.control_period_s)} per env step; longest episode {int(ro.lengths.max())} decisions "
           "(the 'episode' window and the DT normaliser).", ""]
    out += [f"- `{s}`" for s in ro.stores] + [""] + (["What the stores leave unknown is noted at the top of this task.", ""]
                                                    if ro.notes else [])
    out += ["### Rollouts per cell", ""] + cells_markdown(task.cells)
    if any(c.live_alarm is not None for c in task.cells):
        out += ["", "Live alarm columns: the monitor that ran during recording; alarm before onset: "
                "physical failures whose first live alarm came strictly before the onset (timeouts have none)."]
    out += [""]
    sizes = task.split_sizes
    out += ["### Split", ""] + table(["part", "total", *STRATA], [[p, *(str(sizes[p][k]) for k in ("total", *STRATA))] for p in PARTS])
    out += ["", "Fit and calibration episodes are in-distribution successes only; windows are chosen on validation, "
            "all metrics above are on test.", ""]
    if task.calibration_parts is not None:
        a, b = (p.size for p in task.calibration_parts)
        out += [f"Refit after selection: windows and 'select' members were chosen with thresholds from {a} calibration "
                f"episodes; the test thresholds were refitted on the other {b}, which the choice never saw.", ""]
    return out


def _validation(task: TaskResult) -> list[str]:
    kinds = list(next(iter(task.methods.values())).types)
    out = ["### Chosen windows and threshold type (validation)", ""]
    out += table(["method", *kinds, "chosen guaranteed type"],
                 [[n, *(chosen_text(m.types[k]) for k in kinds), m.chosen.threshold_type if m.chosen else "–"]
                  for n, m in task.methods.items()])
    return out + [""]


def _plots(plots: dict[str, Any] | None, deployed: str | None = None) -> list[str]:
    if not plots:
        return []
    other = (f"config `plot_method`, not the deployed `{deployed}`; " if deployed is not None and deployed != plots["method"]
             else "")
    out = ["### Plots", "",
           f"Traces of `{plots['method']}` ({other}{plots['threshold_type']} threshold, δ = {plots['delta']:g}) for one random test "
           "rollout per kind (windowed score, dashed threshold, x = alarm, red line = first alarm, dotted = failure step "
           "of a physical failure; a timeout has none). In the ROC and TWA plots the deployed method is the thick black line "
           "(deployed at the threshold type its legend entry names), "
           "baselines are dashed, references grey, each in its own line style (the legend names them)."]
    if plots["missing_kinds"]:
        out.append(f"Kinds without a test episode (not drawn): {', '.join(plots['missing_kinds'])}.")
    return out + [""] + [f"![{key}]({file})" for key, file in plots["files"].items()] + [""]


def task_markdown(task: TaskResult, criterion: str, plots: dict[str, Any] | None = None, trace_method: str | None = None,
                  seed: int = 0) -> list[str]:
    ro = task.rollouts
    out = [f"## Task `{task.task}`", "",
           f"{ro.n_episodes} episodes; test split {int(task.split.test.size)} episodes "
           f"({task.split_sizes['test']['success_id']} of them in-distribution successes). Details under Data below.", ""]
    for kind, text in task_warnings(task):
        out += [f"**{kind.capitalize()}:** {text}", ""]
    out += _headline(task, criterion) + _deployed_notes(task) + _why(task, criterion) + _select_evidence(task, criterion, seed)
    out += far_markdown(task)
    out += _winners(task) + _grid(task) + _validation(task)
    found = task.findings
    shown = trace_method if trace_method in task.methods else next(iter(task.methods))
    out += _per_delta(task, found.deployed.method if found.deployed else shown)
    out += ["### Detection per stress cell (test)", ""] + detection_markdown(found.detection) + [""] + failure_types_markdown(task)
    out += live_markdown(task.live) + _plots(plots, found.deploy_method) + _data(task) + deploy_markdown(task)
    secs = task.seconds
    return out + [f"Time: fit + score {secs['fit_and_score']:.1f} s, calibration {secs['calibrate']:.2f} s, "
                  f"selection + test {secs['select_and_test']:.2f} s.", ""]


def report_markdown(result: EvaluationResult, plots: dict[str, dict] | None = None) -> str:
    cfg = result.config
    lines = ["# Offline evaluation", "",
             f"Methods: {', '.join(cfg.methods)} (baselines: {', '.join(cfg.baselines) or 'none'}; deployed: "
             f"{cfg.deploy_method or 'none'}). Threshold types: {', '.join(cfg.threshold_types)}. "
             f"Windows: {', '.join(map(str, cfg.windows))} (selected on validation by mean {cfg.selection} over δ, ties by TWA). "
             f"δ grid: {', '.join(f'{d:g}' for d in cfg.deltas)}. Seed {cfg.seed}. Full configuration: `config.json`.", ""]
    for name, task in result.tasks.items():
        lines += task_markdown(task, cfg.selection, (plots or {}).get(name), cfg.plot_method, cfg.seed)
    return "\n".join(lines)
