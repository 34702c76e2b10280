"""PNG figures of an evaluated task: score traces, ROC curves, TWA vs delta (matplotlib, Agg).

Figures are drawn on ``matplotlib.figure.Figure`` with the Agg canvas directly, so the global
pyplot backend of the caller is never touched. The deployed method is drawn thick and black,
baselines dashed and muted, references (the elapsed-time clock, raw-observation novelty) grey, each its own line style; every other method has its own colour; legends sit outside the axes and
panels that compare share their y axis.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

import numpy as np

from calibration import JOINT_KINDS
from fiper.aggregation import combine
from fiper.atomic import replacing

from fiper.evaluation.detection import delta_index
from fiper.evaluation.joint import joint_curves
from fiper.evaluation.metrics import onset_decision as decision_of_onset
from fiper.evaluation.metrics import physical_onset
from fiper.evaluation.results import TaskResult, slug
from fiper.evaluation.splits import STRATA

KIND_TITLES = {"success_id": "success, in distribution", "success_ood": "success, shifted",
               "fail_id": "failure, in distribution", "fail_ood": "failure, shifted"}


DEPLOYED_COLOR = "black"
REFERENCE_COLOR = "dimgrey"  # the trivial references: what every coloured line must beat
# each reference its own grey and line style, so that two references stay apart in the legend
REFERENCE_STYLES = ((REFERENCE_COLOR, ":"), ("grey", "-."), ("darkgrey", "--"), ("slategrey", (0, (1, 3))))
TRACE = {"windowed score": {"color": "tab:blue", "lw": 1.5}, "threshold": {"color": "tab:orange", "ls": "--", "lw": 1.2},
         "alarm": {"color": "tab:red", "marker": "x", "ms": 5, "ls": "none"}, "first alarm": {"color": "tab:red", "lw": 0.8},
         "failure step": {"color": "black", "ls": ":", "lw": 1.0}}


def _figure(rows: int, cols: int, width: float = 4.2, height: float = 2.8, *, legend: float = 0.0, sharey: bool | str = False,
            sharex: bool | str = False):
    """A figure of rows x cols panels with ``legend`` inches free on the right for a figure legend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    total_w, total_h = width * cols + legend, height * rows + 0.4
    fig = Figure(figsize=(total_w, total_h))
    FigureCanvasAgg(fig)
    axes = np.atleast_2d(fig.subplots(rows, cols, squeeze=False, sharey=sharey, sharex=sharex))
    # Fixed margins instead of a layout engine: constrained layout draws every figure twice.
    fig.subplots_adjust(left=0.75 / total_w, right=1 - (0.15 + legend) / total_w, bottom=0.5 / total_h,
                        top=1 - 0.75 / total_h, wspace=0.25, hspace=0.55)
    return fig, axes


def _legend(fig, ax, legend: float, fontsize: int = 7, handles=None) -> None:
    """One legend for the figure, right of the panels (outside every axis)."""
    handles = handles or ax.get_legend_handles_labels()[0]
    labels = [h.get_label() for h in handles]
    width = fig.get_figwidth()
    fig.legend(handles, labels, loc="upper left", bbox_to_anchor=(1 - (legend - 0.05) / width, 1 - 0.75 / fig.get_figheight()),
               fontsize=fontsize, frameon=False)


def method_styles(methods: Sequence[str], deployed: str | None, baselines: Collection[str],
                  references: Collection[str] = ()) -> dict[str, dict]:
    """Line style per method: the deployed one thick and black on top; references grey, each its own grey and
    line style (the first dotted dim grey, then dash-dotted grey, dashed dark grey); the others one distinct
    colour each (other methods first, then baselines), baselines thinner, dashed and muted."""
    from matplotlib import colormaps

    tab20 = colormaps["tab20"].colors
    greys = {14, 15}
    palette = [tab20[i] for i in range(0, 20, 2) if i not in greys] + [tab20[i] for i in range(1, 20, 2) if i not in greys]
    coloured = [m for m in methods if m != deployed and m not in references]
    others = [m for m in coloured if m not in baselines] + [m for m in coloured if m in baselines]
    refs = [m for m in methods if m != deployed and m in references]
    out = {m: {"color": REFERENCE_STYLES[i % len(REFERENCE_STYLES)][0], "lw": 1.8,
               "ls": REFERENCE_STYLES[i % len(REFERENCE_STYLES)][1], "alpha": 0.9, "zorder": 4} for i, m in enumerate(refs)}
    for i, m in enumerate(others):
        cycle = i // len(palette)
        if m in baselines:
            out[m] = {"color": palette[i % len(palette)], "lw": 1.1, "ls": ("--", ":")[cycle % 2], "alpha": 0.75, "zorder": 2}
        else:
            out[m] = {"color": palette[i % len(palette)], "lw": 1.5, "ls": ("-", "-.")[cycle % 2], "alpha": 0.95, "zorder": 3}
    if deployed is not None and deployed in methods:
        out[deployed] = {"color": DEPLOYED_COLOR, "lw": 2.8, "ls": "-", "alpha": 1.0, "zorder": 5}
    return out


def deployed_kind(task: TaskResult, deployed: str | None) -> str | None:
    """The threshold type the deployed method's deployed row uses (the other types' lines are not deployed)."""
    row = task.findings.deployed if task.findings is not None else None
    if deployed is None or row is None or row.method != deployed:
        return None
    return task.methods[deployed].result(row.label).threshold_type


def _label(name: str, deployed: str | None, baselines: Collection[str], references: Collection[str] = (),
           kind: str | None = None) -> str:
    if name == deployed:
        return f"{name} (deployed: {kind})" if kind else f"{name} (deployed)"
    return f"{name} (baseline)" if name in baselines else (f"{name} (reference)" if name in references else name)


def example_episodes(task: TaskResult, seed: int = 0) -> dict[str, int | None]:
    """One test episode per kind (success/fail x ID/OOD), chosen at random with ``seed``; None if absent."""
    ro, test = task.rollouts, task.split.test
    kinds = {"success_id": ro.success & ~ro.ood, "success_ood": ro.success & ro.ood,
             "fail_id": ~ro.success & ~ro.ood, "fail_ood": ~ro.success & ro.ood}
    rng = np.random.default_rng(seed)
    out = {}
    for name in STRATA:
        members = test[kinds[name][test]]
        out[name] = int(rng.choice(members)) if members.size else None
    return out


def onset_decision(task: TaskResult, episode: int) -> int | None:
    """Decision in whose chunk the episode's physical failure sets in (``metrics.onset_decision``); None for a
    success, a timeout or an unknown onset."""
    ro, one = task.rollouts, slice(episode, episode + 1)
    onset = physical_onset(ro.failed[one], ro.failure_step[one], ro.failure_reason[one])
    if onset[0] < 0:
        return None
    start = int(ro.decision_ends[episode - 1]) if episode else 0
    decision = int(decision_of_onset(ro.env_step[None, start : int(ro.decision_ends[episode])], onset)[0])
    return decision if decision >= 0 else None


def threshold_curves(task: TaskResult, method: str, kind: str, d: int, *, d1_fraction: float = 0.5,
                     seed: int = 0) -> list[np.ndarray]:
    """Each score's (T,) threshold curve that the method's test alarms used at delta index ``d``.

    A jointly calibrated method shares one height across its scores, fitted again here on the
    calibration rollouts the test thresholds came from; other methods read the score grids.
    """
    res, spec = task.methods[method].types[kind], task.spec_of(method, kind)
    grids = [task.grids[s] for s in spec.scores]
    windows = [g.index(res.windows[g.name]) for g in grids]
    if spec.joint and kind in JOINT_KINDS:
        calibration = task.calibration_parts[1] if task.calibration_parts else task.split.calibration
        return joint_curves(grids, windows, kind, spec.rule, task.rollouts.lengths, calibration, task.deltas[d],
                            d1_fraction=d1_fraction, seed=seed)
    return [g.gamma[kind][w, d] for g, w in zip(grids, windows)]


def plot_traces(task: TaskResult, method: str, kind: str, d: int, path: Path, seed: int = 0, *,
                d1_fraction: float = 0.5, calibration_seed: int = 0) -> list[str]:
    """Windowed scores, threshold curves and alarms of one example test rollout per kind; returns kinds drawn.

    Rows are the kinds, columns the scores; each column shares its axes, so a failure's score is read
    against a success's on the same scale. ``seed`` picks the examples; ``d1_fraction`` and
    ``calibration_seed`` are the evaluation's, for a jointly calibrated method's shared height.
    """
    res = task.methods[method].types[kind]
    spec = task.spec_of(method, kind)
    curves = threshold_curves(task, method, kind, d, d1_fraction=d1_fraction, seed=calibration_seed)
    examples = {k: e for k, e in example_episodes(task, seed).items() if e is not None}
    legend = 1.9
    fig, axes = _figure(max(len(examples), 1), len(spec.scores), legend=legend, sharey="col", sharex="col")
    lengths = task.rollouts.lengths
    for row, (group, ep) in enumerate(examples.items()):
        n = int(lengths[ep])
        t = np.arange(n)
        etas, gammas = [], []
        for score, curve in zip(spec.scores, curves):
            grid = task.grids[score]
            etas.append(grid.eta[grid.index(res.windows[score]), ep, :n])
            gammas.append(curve[:n])
        above = np.stack([e > g for e, g in zip(etas, gammas)])
        alarm = combine(above, spec.rule)
        first = int(np.argmax(alarm)) if alarm.any() else None
        onset = onset_decision(task, ep)
        for col, score in enumerate(spec.scores):
            ax = axes[row, col]
            dot = {"marker": "o", "ms": 3} if len(t) == 1 else {}  # an episode of one decision: a point, not a line
            ax.plot(t, etas[col], **TRACE["windowed score"], **dot)
            ax.plot(t, gammas[col], **TRACE["threshold"], **dot)
            ax.plot(t[alarm], etas[col][alarm], **TRACE["alarm"])
            if first is not None:
                ax.axvline(first, **TRACE["first alarm"])
            if onset is not None:
                ax.axvline(onset, **TRACE["failure step"])
            ax.set_title(f"{score} (window {res.windows[score]}): {KIND_TITLES[group]}, ep. {ep}", fontsize=8)
            if row == len(examples) - 1:
                ax.set_xlabel("decision")
    if not examples:
        axes[0, 0].text(0.5, 0.5, "no test episodes", ha="center")
    else:
        from matplotlib.lines import Line2D

        _legend(fig, axes[0, 0], legend, handles=[Line2D([], [], label=k, **v) for k, v in TRACE.items()])
    member = f" (member {res.selected})" if res.selected else ""
    fig.suptitle(f"{task.task}: {method}{member}, {kind} threshold, δ={task.deltas[d]:g}", fontsize=10)
    with replacing(path) as tmp:
        fig.savefig(tmp, dpi=90)
    return list(examples)


def roc_points(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, TPR) of the ROC curve from (0, 0) to (1, 1); tied scores form one diagonal step."""
    order = np.argsort(-scores, kind="stable")
    s, pos = scores[order], positive[order].astype(np.float64)
    tp, fp = np.cumsum(pos), np.cumsum(1.0 - pos)
    last = np.r_[s[1:] != s[:-1], True]  # the end of each group of equal scores
    n_pos, n_neg = max(pos.sum(), 1.0), max((1.0 - pos).sum(), 1.0)
    return np.r_[0.0, fp[last] / n_neg], np.r_[0.0, tp[last] / n_pos]


def roc_title(task: str, delta: float) -> str:
    """The ROC figure's title: its curves are at one δ, the report's AUROC column a mean over the δ grid."""
    return f"{task}: ROC on test at δ={delta:g} (report.md's AUROC: mean over δ, and per δ for the deployed method)"


def plot_roc(task: TaskResult, d: int, path: Path, deployed: str | None = None, baselines: Collection[str] = (),
             references: Collection[str] = ()) -> None:
    """ROC curve of the per-rollout maximum combined ratio on test, per method, one panel per threshold type."""
    kinds = list(next(iter(task.methods.values())).types)
    legend = 2.4
    fig, axes = _figure(1, len(kinds), 3.6, 3.6, legend=legend, sharey=True)
    failed = task.rollouts.failed[task.split.test]
    styles = method_styles(list(task.methods), deployed, baselines, references)
    dep_kind = deployed_kind(task, deployed)
    for col, kind in enumerate(kinds):
        ax = axes[0, col]
        for name, method in task.methods.items():
            res = method.types[kind]
            fpr, tpr = roc_points(res.test_alarms.max_ratio[0, d], failed)
            ax.plot(fpr, tpr, drawstyle="default", label=_label(name, deployed, baselines, references, dep_kind), **styles[name])
        ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=0.8)
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{kind} threshold, δ={task.deltas[d]:g}", fontsize=9)
        ax.set_xlabel("false positive rate")
    axes[0, 0].set_ylabel("true positive rate")
    _legend(fig, axes[0, 0], legend)
    fig.suptitle(roc_title(task.task, task.deltas[d]), fontsize=10)
    with replacing(path) as tmp:
        fig.savefig(tmp, dpi=90)


def plot_twa_vs_delta(task: TaskResult, path: Path, deployed: str | None = None, baselines: Collection[str] = (),
                      references: Collection[str] = ()) -> None:
    """Test TWA against δ per method, one panel per threshold type, one shared y axis."""
    kinds = list(next(iter(task.methods.values())).types)
    legend = 2.4
    fig, axes = _figure(1, len(kinds), 3.6, 3.2, legend=legend, sharey=True)
    deltas = np.asarray(task.deltas)
    styles = method_styles(list(task.methods), deployed, baselines, references)
    dep_kind = deployed_kind(task, deployed)
    for col, kind in enumerate(kinds):
        ax = axes[0, col]
        for name, method in task.methods.items():
            ax.plot(deltas, np.asarray(method.types[kind].test["twa"], dtype=float), marker="o", ms=2.5,
                    label=_label(name, deployed, baselines, references, dep_kind), **styles[name])
        ax.set_title(f"{kind} threshold", fontsize=9)
        ax.set_xlabel("δ (tolerated false-alarm rate)")
    axes[0, 0].set_ylabel("TWA (test)")
    _legend(fig, axes[0, 0], legend)
    fig.suptitle(f"{task.task}: time-weighted accuracy vs δ", fontsize=10)
    with replacing(path) as tmp:
        fig.savefig(tmp, dpi=90)


def plot_task(task: TaskResult, out_dir: Path, *, method: str | None, kind: str | None, delta: float, seed: int = 0,
              baselines: Collection[str] = (), references: Collection[str] = (), d1_fraction: float = 0.5) -> dict[str, object]:
    """All figures of one task; returns the file names and the example kinds drawn / missing.

    Traces are drawn for one method (None: the deployed one, else the first) and threshold type
    (``kind``; None: 'band' if evaluated, else the first type); ROC and TWA-vs-delta panels cover
    every threshold type.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    name = slug(task.task)
    deployed = task.findings.deploy_method if task.findings else None
    method = next(m for m in (method, deployed, next(iter(task.methods))) if m in task.methods)
    kinds = list(task.methods[method].types)
    kind = kind if kind in kinds else ("band" if "band" in kinds else kinds[0])
    d = delta_index(task.deltas, delta)
    files = {"traces": f"{name}_traces_{kind}.png"}
    drawn = plot_traces(task, method, kind, d, out_dir / files["traces"], seed, d1_fraction=d1_fraction, calibration_seed=seed)
    plot_roc(task, d, out_dir / f"{name}_roc.png", deployed, baselines, references)
    plot_twa_vs_delta(task, out_dir / f"{name}_twa_vs_delta.png", deployed, baselines, references)
    files["roc"], files["twa_vs_delta"] = f"{name}_roc.png", f"{name}_twa_vs_delta.png"
    return {"files": files, "method": method, "threshold_type": kind, "delta": task.deltas[d], "kinds": drawn,
            "missing_kinds": [k for k in STRATA if k not in drawn]}
