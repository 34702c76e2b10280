"""The outcome report read from real zarr stores of hand-made episodes: counts per response and per cell,
outcome.md / outcome.json / outcome.png, and the errors for stores that cannot be paired."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fiper.evaluation.outcome import outcome_report, read_records
from fiper.evaluation.render.outcome import outcome_markdown, outcome_table, write_outcome
from fiper.storage import EpisodeStore

PERIOD = 0.1


def append(store: EpisodeStore, shift, seed, *, success=False, reason="", failure_step=-1, alarm=-1, act=-1, act_as="fallback:hold",
           length=40, ms=10.0, drift=0.0):
    """One episode: a decision every 4 steps, the alarm and the response from the decision at env step ``alarm`` / ``act``."""
    steps = np.arange(0, length, 4)
    intervention = np.where((act >= 0) & (steps >= act), act_as, "none")
    actions = np.tile(np.arange(length, dtype=np.float64)[:, None], (1, 2)) + seed
    if drift:
        actions[1:] += drift  # executes something else from step 1 on
    decisions = {"env_step": steps, "alarm": (alarm >= 0) & (steps >= alarm), "intervention": intervention.astype(str),
                 "timing/total_ms": np.full(steps.size, ms)}
    meta = {"success": success, "failure_step": failure_step if not success else -1, "failure_reason": reason, "shift": shift,
            "severity": 0.0 if shift == "none" else 1.0, "seed": seed}
    store.append_episode({"action": actions}, decisions=decisions, meta=meta)


@pytest.fixture
def stores(tmp_path):
    without = EpisodeStore.create(tmp_path / "without.zarr", attrs={"task": "pick_place", "control_period_s": PERIOD})
    hold = EpisodeStore.create(tmp_path / "hold.zarr", attrs={"task": "pick_place", "control_period_s": PERIOD})
    steer = EpisodeStore.create(tmp_path / "steer.zarr", attrs={"task": "pick_place", "control_period_s": PERIOD})
    # in distribution: two successes without fiper; hold stops one of them (a false alarm)
    append(without, "none", 0, success=True)
    append(without, "none", 1, success=True)
    append(hold, "none", 0, success=True, ms=30.0)
    append(hold, "none", 1, reason="timeout", failure_step=39, alarm=8, act=8, ms=30.0)
    append(steer, "none", 0, success=True, ms=50.0)
    append(steer, "none", 1, success=True, ms=50.0)
    # obstacle: a collision at 20 and a timeout without fiper
    append(without, "obstacle", 0, reason="obstacle_collision", failure_step=20, length=21)
    append(without, "obstacle", 1, reason="timeout", failure_step=39)
    append(hold, "obstacle", 0, reason="timeout", failure_step=39, alarm=12, act=12, ms=30.0)  # -> safe stop, 8 steps early
    append(hold, "obstacle", 1, reason="timeout", failure_step=39, ms=30.0)  # no alarm: still a timeout
    append(steer, "obstacle", 0, success=True, alarm=12, act=12, act_as="steer", ms=50.0)  # steered around: -> success
    append(steer, "obstacle", 1, reason="dropped", failure_step=30, alarm=4, act=4, act_as="steer", ms=50.0)  # damage added
    return tmp_path


def test_report_counts_each_response_overall_and_per_cell(stores, tmp_path):
    report = outcome_report(stores / "without.zarr", {"hold": stores / "hold.zarr", "steer": stores / "steer.zarr"})
    assert report.task == "pick_place" and report.control_period_s == PERIOD and report.seeds == 2
    assert report.cells == (("none", 0.0), ("obstacle", 1.0))
    assert report.without == {"success": 2, "safe_stop": 0, "damage": 1, "timeout": 1}
    hold, steer = report.overall["hold"], report.overall["steer"]
    assert hold.outcomes == {"success": 1, "safe_stop": 2, "damage": 0, "timeout": 1}
    assert (hold.physical_to_safe_stop, hold.would_be_physical, hold.timeout_to_safe_stop, hold.would_be_timeout) == (1, 1, 0, 1)
    assert (hold.successes_lost, hold.false_alarm_stops, hold.damage_added) == (1, 1, 0)
    assert (hold.alarmed_before_onset, hold.with_onset, hold.median_warning_decisions) == (1, 1, 2.0)  # decisions 5 - 3
    assert hold.early_saved == 1  # the early-alarmed would-be damage ended as a safe stop
    assert hold.median_warning_s == pytest.approx(0.8)
    assert hold.cost_ratio == pytest.approx(3.0) and steer.cost_ratio == pytest.approx(5.0)
    assert steer.outcomes == {"success": 3, "safe_stop": 0, "damage": 1, "timeout": 0}
    assert (steer.physical_to_success, steer.successes_lost, steer.damage_added) == (1, 0, 1)
    assert hold.diverged == steer.diverged == 0
    none_hold = report.per_cell[("none", 0.0)]["hold"]
    assert none_hold.episodes == 2 and none_hold.false_alarm_stops == 1 and none_hold.would_be_physical == 0
    assert report.without_per_cell[("obstacle", 1.0)] == {"success": 0, "safe_stop": 0, "damage": 1, "timeout": 1}
    only = outcome_report(stores / "without.zarr", {"hold": stores / "hold.zarr"}, keys={("obstacle", 1.0, 0)})
    assert only.overall["hold"].episodes == 1 and only.cells == (("obstacle", 1.0),)

    paths = write_outcome(report, tmp_path / "out")
    doc = json.loads(paths["json"].read_text())
    assert doc["overall"]["hold"]["outcomes"] == hold.outcomes and doc["without"] == report.without
    assert doc["per_cell"][1]["responses"]["steer"]["physical_to_success"] == 1
    assert paths["plot"].stat().st_size > 5000
    md = paths["markdown"].read_text()
    assert "| hold | 4 | 1 | 2 | 0 | 1 | 0 / 1 of 1 | 0 / 0 of 1 | 1 of 2 | 1 | 0 | 1 of 1 | 1 of 1 | 2.0 / 0.8 | 3.00× |" in md
    assert "| without fiper | 4 | 2 | 0 | 1 | 1 |" in md and "![outcomes](outcome.png)" in md
    assert "warning:" not in outcome_table(report)


def test_a_pair_that_ran_differently_before_acting_is_reported(stores):
    drifted = EpisodeStore.create(stores / "drift.zarr", attrs={"control_period_s": PERIOD})
    append(drifted, "none", 0, success=True, drift=0.5)
    report = outcome_report(stores / "without.zarr", {"drift": stores / "drift.zarr"})
    assert report.overall["drift"].diverged == 1
    assert "1 of 1 episodes of 'drift' executed other actions" in outcome_table(report)
    assert "**Warning:** 1 of 1 episodes" in outcome_markdown(report)


def test_stores_that_cannot_be_paired_are_refused(stores):
    other = EpisodeStore.create(stores / "other.zarr", attrs={"control_period_s": 0.05})
    append(other, "none", 0, success=True)
    with pytest.raises(ValueError, match="different control periods"):
        outcome_report(stores / "without.zarr", {"other": stores / "other.zarr"})
    elsewhere = EpisodeStore.create(stores / "elsewhere.zarr", attrs={"control_period_s": PERIOD})
    append(elsewhere, "none", 7, success=True)
    with pytest.raises(ValueError, match=r"share no \(shift, severity, seed\)"):
        outcome_report(stores / "without.zarr", {"elsewhere": stores / "elsewhere.zarr"})
    bare = EpisodeStore.create(stores / "bare.zarr")
    bare.append_episode({"action": np.zeros((4, 2))}, meta={"success": True})
    with pytest.raises(ValueError, match=r"lacks meta/failure_step.*decisions/env_step.*python -m launch.act"):
        read_records(stores / "bare.zarr")


def test_only_a_fallback_holding_to_the_end_is_a_stop(stores):
    """A response that hands control back (a return, then the policy again) and then runs out of time did not stop;
    one whose fallback holds control to the end did, even after an earlier hand-back."""
    back = EpisodeStore.create(stores / "back.zarr", attrs={"control_period_s": PERIOD})
    append(back, "obstacle", 1, reason="timeout", failure_step=39, alarm=8, act=8, act_as="fallback:return_retry")
    dec = {"env_step": np.array([0, 4, 8, 12, 16]), "alarm": np.array([0, 0, 1, 0, 1], bool),
           "intervention": np.array(["none", "none", "fallback:return_retry", "none", "fallback:hold"]),
           "timing/total_ms": np.full(5, 10.0)}
    meta = {"success": False, "failure_step": 39, "failure_reason": "timeout", "shift": "obstacle", "severity": 1.0, "seed": 0}
    back.append_episode({"action": np.zeros((40, 2))}, decisions=dec, meta=meta)
    dec["intervention"] = np.array(["none", "none", "fallback:return_retry", "none", "none"])
    meta["seed"] = 2
    back.append_episode({"action": np.zeros((40, 2))}, decisions=dec, meta=meta)
    records, _ = read_records(stores / "back.zarr")
    assert [(r.stop_step, r.acted_step, r.outcome) for r in records] == [(8, 8, "safe_stop"), (16, 8, "safe_stop"), (-1, 8, "timeout")]
