"""Rollouts per stress cell: counts of the four kinds, live alarms before onset, failure reasons."""

from __future__ import annotations

import numpy as np

from fiper.evaluation.cells import cell_counts, four_kinds
from fiper.evaluation.render.tables_md import cells_markdown
from benchmarks.synthetic_stores import write_synthetic_store
from fiper.evaluation.rollouts import read_store


def _rollouts(tmp_path):
    write_synthetic_store(tmp_path / "r.zarr", seed=0, n_success_id=5, n_success_ood=3, n_fail_id=2, n_fail_ood=4)
    return read_store(tmp_path / "r.zarr")


def test_cells_count_the_four_kinds_and_live_alarms(tmp_path):
    ro = _rollouts(tmp_path)
    assert (ro.live_alarm_step == -1).all() and (ro.failure_reason == "").all()  # not recorded by the synthetic writer
    rows = cell_counts(ro)
    assert rows[0].shift == "none" and all(r.live_alarm is None for r in rows)
    assert four_kinds(rows) == {"success_id": 5, "success_ood": 3, "fail_id": 2, "fail_ood": 4}
    # hand-set live alarms and reasons: one failure alarmed before its failure step, one after, one success alarmed
    failed = np.flatnonzero(ro.failed & ro.ood)
    ro.failure_step[failed[:2]] = 10
    ro.live_alarm_step[failed[0]], ro.live_alarm_step[failed[1]] = 4, 12
    ro.live_alarm_step[np.flatnonzero(ro.success)[0]] = 3
    ro.failure_reason = ro.failure_reason.astype("<U16")
    ro.failure_reason[failed] = ["dropped", "dropped", "timeout", "dropped"][: len(failed)]
    rows = cell_counts(ro)
    shifted = [r for r in rows if r.shift != "none"]
    assert sum(r.alarmed_failures for r in shifted) == 2 and sum(r.alarm_before_onset for r in shifted) == 1
    assert sum(r.live_alarm for r in rows) == 3
    reasons = {}
    for r in shifted:
        for name, n in r.reasons:
            reasons[name] = reasons.get(name, 0) + n
    assert reasons == {"dropped": 3, "timeout": 1}
    text = "\n".join(cells_markdown(rows))
    assert "| live alarm | alarm on failures | alarm before onset |" in text
    assert "failure in distribution 2, failure under shift 4" in text
