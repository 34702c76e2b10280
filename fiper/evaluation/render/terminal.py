"""The terminal summary: per task, methods x threshold types averaged over the δ grid, the deployed row and
the best baseline named, the best reference and the deployed row's margin over it, and the live monitors."""

from __future__ import annotations

from fiper.evaluation.render.text import COLUMNS, chosen_text, fmt, kind_text, mean, signed, task_warnings
from fiper.evaluation.results import EvaluationResult
from fiper.evaluation.splits import PARTS


def summary_table(result: EvaluationResult) -> str:
    """Per task: methods x threshold types, test metrics averaged over the delta grid."""
    lines = []
    for task in result.tasks.values():
        sizes = task.split_sizes
        lines.append(f"task {task.task}: " + ", ".join(f"{p} {sizes[p]['total']}" for p in PARTS)
                     + f"; deltas {task.deltas[0]:g}..{task.deltas[-1]:g} ({len(task.deltas)})")
        rows = list(task.rows())
        width = max([14, *(len(name) for name, _, _ in rows)])  # a long method name (fiper_clock_or_joint) keeps the columns
        head = f"{'method':<{width}} {'threshold':<17} " + " ".join(f"{c:>6}" for c, _ in COLUMNS) + f" {'FAR-ID':>7}  window"
        lines += [head, "-" * len(head)]
        for name, kind, res in rows:
            vals = " ".join(f"{fmt(mean(res.test[k])):>6}" for _, k in COLUMNS)
            lines.append(f"{name:<{width}} {kind_text(kind, res):<17} {vals} {fmt(mean(res.test['far_id'])):>7}  {chosen_text(res)}")
        found = task.findings
        for role, row, how in (("deployed", found.deployed, "every choice made on validation"),
                               ("best baseline", found.best_baseline, "its type chosen on validation, the baseline picked on test")):
            if row is not None:
                res = task.methods[row.method].result(row.label)
                member = f" = {res.selected}" if res.selected else ""
                lines.append(f"{role} {row.method} ({kind_text(row.label, res)}{member}; {how}): TWA {fmt(mean(res.test['twa']))}, "
                             f"Acc {fmt(mean(res.test['accuracy']))}, FAR-ID {fmt(mean(res.test['far_id']))}")
        if found.best_reference is not None:
            ref = task.methods[found.best_reference.method].result(found.best_reference.label)
            m = found.deployed_margin
            lines.append(f"best reference {found.best_reference.method} ({kind_text(found.best_reference.label, ref)}): "
                         f"TWA {fmt(mean(ref.test['twa']))}, Acc {fmt(mean(ref.test['accuracy']))}; "
                         + (f"deployed {m.row.method} over it: Acc {signed(m.accuracy)}, TWA {signed(m.twa)}" if m is not None
                            else "no deployed row"))
        for live in task.live:
            lines.append(f"live monitor {live['monitor']} ({live['setting'] or 'settings not readable'}), {live['episodes']} rollouts: "
                         f"TWA {fmt(live['twa'])}, Acc {fmt(live['accuracy'])}, TPR {fmt(live['tpr'])}, TNR {fmt(live['tnr'])}, "
                         f"FAR-ID {fmt(live['far_id'])}")
        lines += [f"{kind}: {text}" for kind, text in task_warnings(task)]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"

