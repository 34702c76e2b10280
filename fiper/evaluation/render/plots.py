"""PNG figures of an evaluated task: score traces, ROC curves, TWA vs delta (matplotlib, Agg).

Figures are drawn on ``matplotlib.figure.Figure`` with the Agg canvas directly, so the global
pyplot backend of the caller is never touched.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from fiper.evaluation.pipeline import TaskResult
from fiper.evaluation.splits import STRATA

KIND_TITLES = {"success_id": "success, in distribution", "success_ood": "success, shifted",
               "fail_id": "failure, in distribution", "fail_ood": "failure, shifted"}


def _figure(rows: int, cols: int, width: float = 4.2, height: float = 2.8):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * cols, height * rows + 0.4))
    FigureCanvasAgg(fig)
    axes = np.atleast_2d(fig.subplots(rows, cols, squeeze=False))
    # Fixed margins instead of a layout engine: constrained layout draws every figure twice.
    fig.subplots_adjust(left=0.75 / (width * cols), right=1 - 0.15 / (width * cols), bottom=0.5 / (height * rows + 0.4),
                        top=1 - 0.75 / (height * rows + 0.4), wspace=0.25, hspace=0.55)
    return fig, axes


def slug(text: str) -> str:
    """A file-name-safe version of a task name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "task"


def delta_index(deltas, delta: float) -> int:
    """Index of the grid delta nearest to ``delta``."""
    return int(np.argmin(np.abs(np.asarray(deltas) - float(delta))))


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
    """Decision index at which the episode's failure_step is reached (None without an onset)."""
    ro = task.rollouts
    step = int(ro.failure_step[episode])
    if step < 0:
        return None
    start = int(ro.decision_ends[episode - 1]) if episode else 0
    env = ro.env_step[start : int(ro.decision_ends[episode])]
    hit = np.flatnonzero(env >= step)
    return int(hit[0]) if hit.size else None


def plot_traces(task: TaskResult, method: str, kind: str, d: int, path: Path, seed: int = 0) -> list[str]:
    """Windowed scores, threshold curves and alarms of one example test rollout per kind; returns kinds drawn."""
    res = task.methods[method].types[kind]
    spec = task.spec_of(method, kind)
    examples = {k: e for k, e in example_episodes(task, seed).items() if e is not None}
    fig, axes = _figure(max(len(examples), 1), len(spec.scores))
    lengths = task.rollouts.lengths
    for row, (group, ep) in enumerate(examples.items()):
        n = int(lengths[ep])
        t = np.arange(n)
        etas, gammas = [], []
        for score in spec.scores:
            grid = task.grids[score]
            w = grid.index(res.windows[score])
            etas.append(grid.eta[w, ep, :n])
            gammas.append(grid.gamma[kind][w, d, :n])
        above = np.stack([e > g for e, g in zip(etas, gammas)])
        alarm = above.any(axis=0) if spec.rule == "or" else above.all(axis=0)
        first = int(np.argmax(alarm)) if alarm.any() else None
        onset = onset_decision(task, ep)
        for col, score in enumerate(spec.scores):
            ax = axes[row, col]
            ax.plot(t, etas[col], color="tab:blue", lw=1.5, label=f"{score} (window {res.windows[score]})")
            ax.plot(t, gammas[col], color="tab:orange", ls="--", lw=1.2, label="threshold")
            ax.plot(t[alarm], etas[col][alarm], "x", color="tab:red", ms=5, label="alarm")
            if first is not None:
                ax.axvline(first, color="tab:red", lw=0.8)
            if onset is not None:
                ax.axvline(onset, color="black", ls=":", lw=1.0, label="failure step")
            ax.set_title(f"{KIND_TITLES[group]} (episode {ep})", fontsize=9)
            ax.set_xlabel("decision")
            ax.legend(fontsize=6, loc="upper left")
    if not examples:
        axes[0, 0].text(0.5, 0.5, "no test episodes", ha="center")
    fig.suptitle(f"{task.task}: {method}, {kind} threshold, delta={task.deltas[d]:g}", fontsize=10)
    fig.savefig(path, dpi=90)
    return list(examples)


def roc_points(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, TPR) of the ROC curve from (0, 0) to (1, 1); tied scores form one diagonal step."""
    order = np.argsort(-scores, kind="stable")
    s, pos = scores[order], positive[order].astype(np.float64)
    tp, fp = np.cumsum(pos), np.cumsum(1.0 - pos)
    last = np.r_[s[1:] != s[:-1], True]  # the end of each group of equal scores
    n_pos, n_neg = max(pos.sum(), 1.0), max((1.0 - pos).sum(), 1.0)
    return np.r_[0.0, fp[last] / n_neg], np.r_[0.0, tp[last] / n_pos]


def plot_roc(task: TaskResult, d: int, path: Path) -> None:
    """ROC curve of the per-rollout maximum combined ratio on test, per method, one panel per threshold type."""
    kinds = list(next(iter(task.methods.values())).types)
    fig, axes = _figure(1, len(kinds), 4.0, 3.8)
    failed = task.rollouts.failed[task.split.test]
    for col, kind in enumerate(kinds):
        ax = axes[0, col]
        for name, method in task.methods.items():
            res = method.types[kind]
            fpr, tpr = roc_points(res.test_alarms.max_ratio[0, d], failed)
            ax.plot(fpr, tpr, lw=1.2, label=f"{name} ({np.asarray(res.test['auroc'])[d]:.2f})")
        ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=0.8)
        ax.set_title(f"{kind}, delta={task.deltas[d]:g}", fontsize=9)
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.legend(fontsize=6, loc="lower right")
    fig.suptitle(f"{task.task}: ROC on test (AUROC in brackets)", fontsize=10)
    fig.savefig(path, dpi=90)


def plot_twa_vs_delta(task: TaskResult, path: Path) -> None:
    """Test TWA against 1 - delta per method, one panel per threshold type."""
    kinds = list(next(iter(task.methods.values())).types)
    fig, axes = _figure(1, len(kinds), 4.0, 3.4)
    conf = 1.0 - np.asarray(task.deltas)
    for col, kind in enumerate(kinds):
        ax = axes[0, col]
        for name, method in task.methods.items():
            ax.plot(conf, np.asarray(method.types[kind].test["twa"], dtype=float), marker="o", ms=3, lw=1.2, label=name)
        ax.set_title(kind, fontsize=9)
        ax.set_xlabel("1 - delta")
        ax.set_ylabel("TWA (test)")
        ax.legend(fontsize=6)
    fig.suptitle(f"{task.task}: time-weighted accuracy vs confidence", fontsize=10)
    fig.savefig(path, dpi=90)


def plot_task(task: TaskResult, out_dir: Path, *, method: str | None, kind: str | None, delta: float, seed: int = 0) -> dict[str, object]:
    """All figures of one task; returns the file names and the example kinds drawn / missing.

    Traces are drawn for one method and threshold type (``kind``; None: 'band' if evaluated,
    else the first type); ROC and TWA-vs-delta panels cover every threshold type.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    name = slug(task.task)
    method = method if method in task.methods else next(iter(task.methods))
    kinds = list(task.methods[method].types)
    kind = kind if kind in kinds else ("band" if "band" in kinds else kinds[0])
    d = delta_index(task.deltas, delta)
    files = {"traces": f"{name}_traces_{kind}.png"}
    drawn = plot_traces(task, method, kind, d, out_dir / files["traces"], seed)
    plot_roc(task, d, out_dir / f"{name}_roc.png")
    plot_twa_vs_delta(task, out_dir / f"{name}_twa_vs_delta.png")
    files["roc"], files["twa_vs_delta"] = f"{name}_roc.png", f"{name}_twa_vs_delta.png"
    return {"files": files, "method": method, "threshold_type": kind, "delta": task.deltas[d], "kinds": drawn,
            "missing_kinds": [k for k in STRATA if k not in drawn]}
