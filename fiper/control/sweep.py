"""Stress sweep: monitored episodes over shifts x severities x seeds, recorded with labels.

Generic over environments: ``make_env(shift, severity)`` builds a gymnasium env (fiper's MuJoCo
tasks or a user's own factory). Episodes already in the store (same shift, severity, seed) are
skipped, so an interrupted sweep resumes where it stopped; the recorder refuses a store made by a
different policy, monitor or env (its fingerprint), so resuming never mixes origins.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from fiper.collection import clipped_note
from fiper.control.loop import run_episode
from fiper.control.monitored_policy import MonitoredPolicy
from fiper.control.period import declared_period
from fiper.control.recorder import RolloutRecorder
from fiper.label_notes import DEFAULT_TERMINATED, no_success_reported, reports_success, unnamed_terminations
from fiper.storage.merge import OPTIONAL_META

#: Per-episode meta the summary's notes read back from a store: actions clipped to the env's action space (count, largest
#: excursion) and, for a failure labelled the default 'terminated', the final info's text fiper does not read (JSON; '').
#: A store may lack them (merge_stores keeps them only when every source records them).
NOTE_META = OPTIONAL_META


@dataclass
class SweepSummary:
    """Counts of the episodes per (shift, severity) and the notes on them: after ``run_sweep``, every episode of the store,
    earlier runs' too (the notes: those that record NOTE_META; ``uncounted`` says how many do not)."""

    rows: dict[tuple[str, float], dict[str, int]] = field(default_factory=dict)
    run_now: int = 0  # episodes this run recorded (the rest of the rows' episodes were in the store before it)
    clipped_steps: int = 0  # the policy's actions clipped to the env's action space, over the episodes the notes count
    clip_excess: float = 0.0
    total_steps: int = 0  # env steps of the episodes the notes count
    unnamed: int = 0  # failed episodes labelled the default 'terminated' whose final info said why in words of its own
    unnamed_words: dict[str, str] = field(default_factory=dict)  # the unread text of one of them (label_notes.unread_words)
    uncounted: int = 0  # episodes of the store the notes leave out: recorded without NOTE_META
    unsaid: int = 0  # episodes run now whose final info did not say whether they succeeded (label_notes.reports_success)
    unsaid_terminated: int = 0  # of them, those labelled the default 'terminated' (they ended terminated)
    unsaid_timeouts: int = 0  # of them, those labelled 'timeout' (they ran to the time limit)
    info_keys: tuple[str, ...] = ()  # the final info keys of the last of them

    def add(self, shift: str, severity: float, success: bool, alarmed: bool, clipped_steps: int = 0, clip_excess: float = 0.0,
            steps: int = 0) -> None:
        self.count(shift, severity, success, alarmed)
        self.run_now += 1
        self.clipped_steps += clipped_steps
        self.clip_excess = max(self.clip_excess, clip_excess)
        self.total_steps += steps

    def add_episode(self, result: Any, alarmed: bool, notes: Mapping[str, Any]) -> None:
        """One episode this run recorded (an EpisodeResult of ``run_episode``, its ``note_meta``)."""
        self.add(result.labels["shift"], result.labels["severity"], result.success, alarmed, result.clipped_steps,
                 result.clip_excess, result.n_steps)
        if notes["unread_info"]:
            self.unnamed += 1
            self.unnamed_words = self.unnamed_words or result.unread
        if result.info_keys is not None and not reports_success(result.info_keys):
            self.unsaid += 1
            self.unsaid_terminated += result.labels["failure_reason"] == DEFAULT_TERMINATED
            self.unsaid_timeouts += result.labels["failure_reason"] == "timeout"
            self.info_keys = result.info_keys

    def count(self, shift: str, severity: float, success: bool, alarmed: bool) -> None:
        row = self.rows.setdefault((shift, round(float(severity), 6)),
                                   {"episodes": 0, "success": 0, "alarmed": 0, "successes alarmed": 0})
        row["episodes"] += 1
        row["success"] += int(success)
        row["alarmed"] += int(alarmed)
        row["successes alarmed"] += int(alarmed and success)

    def count_store(self, store: Any) -> None:
        """Rows counted anew from every episode of ``store`` (meta shift, severity, success, first_alarm_step), when it has them."""
        if store is None or store.n_episodes == 0 or not {"shift", "severity", "success"} <= set(store.meta_keys):
            return
        self.rows = {}
        meta = {k: store.meta(k) for k in ("shift", "severity", "success", "first_alarm_step") if k in store.meta_keys}
        alarm = meta.get("first_alarm_step", np.full(store.n_episodes, -1))
        for shift, sev, ok, first in zip(meta["shift"], meta["severity"], meta["success"], alarm):
            self.count(str(shift), float(sev), bool(ok), int(first) >= 0)
        self.count_notes(store)

    def count_notes(self, store: Any) -> None:
        """The notes' counts anew from every episode of ``store`` when it records NOTE_META; else its episodes not run
        now are ``uncounted`` (a store keeps one set of keys, so this run's were recorded without them too)."""
        if not set(NOTE_META) <= set(store.meta_keys):
            self.uncounted = max(store.n_episodes - self.run_now, 0)
            return
        clipped, unread = store.meta("clipped_steps").astype(np.int64), [str(u) for u in store.meta("unread_info")]
        self.clipped_steps, self.total_steps = int(clipped.sum()), int(store.episode_lengths.sum())
        self.clip_excess = float(store.meta("clip_excess").max(initial=0.0))
        said = [u for u in unread if u]
        self.unnamed, self.unnamed_words, self.uncounted = len(said), json.loads(said[0]) if said else {}, 0

    def table(self) -> str:
        lines = [f"{'shift':<22}{'severity':>9}{'episodes':>10}{'success':>9}{'alarmed':>9}{'successes alarmed':>19}"
                 f"{'failures alarmed':>18}"]
        for (shift, sev), r in sorted(self.rows.items()):
            false_alarms = f"{r['successes alarmed']} of {r['success']}"
            caught = f"{r['alarmed'] - r['successes alarmed']} of {r['episodes'] - r['success']}"
            lines.append(f"{shift:<22}{sev:>9.2f}{r['episodes']:>10}{r['success']:>9}{r['alarmed']:>9}{false_alarms:>19}"
                         f"{caught:>18}")
        total = sum(r["episodes"] for r in self.rows.values())
        if total > self.run_now:
            lines.append(f"{total} episodes in the store: {self.run_now} run now, {total - self.run_now} recorded before")
        return "\n".join(lines + self.notes())

    def notes(self) -> list[str]:
        """The lines on clipped actions and unnamed terminations, and which episodes they count."""
        lines = []
        if self.clipped_steps:
            lines.append(policy_clipped_note(self.clipped_steps, self.total_steps, self.clip_excess))
        if self.run_now and self.unsaid == self.run_now:
            lines.append("note: no success can be counted: " + no_success_reported(
                self.unsaid, self.info_keys, self.unsaid_terminated, "episodes run now", timeouts=self.unsaid_timeouts))
        if self.unnamed:
            lines.append("note: " + unnamed_terminations(self.unnamed, self.unnamed_words))
        if self.uncounted:
            lines.append(f"the notes on clipped actions and unnamed terminations count the {self.run_now} episode"
                         f"{'s' * (self.run_now != 1)} run now only: the {self.uncounted} recorded before carry no meta/"
                         f"{', meta/'.join(NOTE_META)}")
        return lines


def note_meta(result: Any) -> dict[str, Any]:
    """NOTE_META of one episode (an EpisodeResult of ``run_episode``)."""
    unnamed = not result.success and result.labels["failure_reason"] == DEFAULT_TERMINATED and result.unread
    return {"clipped_steps": int(result.clipped_steps), "clip_excess": float(result.clip_excess),
            "unread_info": json.dumps(result.unread, sort_keys=True) if unnamed else ""}


def policy_clipped_note(steps: int, total: int, excess: float) -> str:
    """The sweep's line on the policy's actions that the control loop clipped to the env's action space."""
    return clipped_note(steps, total, excess, "the policy's", "as executed (data/action; decisions/executed keeps the commanded chunks)",
                        "check the policy's action normalisation (an adapter's unnormalise step) or the env's action space")


def recorded_episodes(recorder: RolloutRecorder) -> set[tuple[str, float, int]]:
    store = recorder.store
    if store is None or store.n_episodes == 0 or not {"shift", "severity", "seed"} <= set(store.meta_keys):
        return set()
    return {(str(a), round(float(b), 6), int(c)) for a, b, c in zip(store.meta("shift"), store.meta("severity"), store.meta("seed"))}


def check_period(env: Any, recorder: RolloutRecorder, shift: str, severity: float) -> None:
    """A cell's env must step at the store's recorded control period (a shift's own factory may not)."""
    recorded, declared = recorder.attrs.get("control_period_s"), declared_period(env)
    if recorded is not None and declared is not None and not np.isclose(declared[0], float(recorded), rtol=1e-6):
        raise ValueError(f"the env of cell ({shift}, {severity:g}) declares {declared[1]} = {declared[0]:g} s per step but the "
                         f"store records control_period_s={float(recorded):g}; every episode of a store shares one control "
                         "period: record this cell into its own store (out=<path>)")


def run_sweep(
    make_env: Callable[[str, float], Any],
    agent: MonitoredPolicy,
    cells: Iterable[tuple[str, float]],
    seeds: Sequence[int],
    recorder: RolloutRecorder,
    *,
    record_keys: Sequence[str] | None = None,
    progress: bool = True,
) -> SweepSummary:
    """Run and record every (shift, severity, seed) not yet in the store; returns the counts of every episode it holds.
    Once all are recorded, a store the recorder replaced (``overwrite``) is deleted (``RolloutRecorder.finish``)."""
    cells = [(str(s), float(v)) for s, v in cells]
    done = recorded_episodes(recorder)
    todo = [(s, v, int(seed)) for s, v in cells for seed in seeds if (s, round(v, 6), int(seed)) not in done]
    summary = SweepSummary()
    bar = tqdm(total=len(todo), desc="stress rollouts", disable=not progress)
    env, env_key = None, None
    for shift, severity, seed in todo:
        if (shift, severity) != env_key:
            if env is not None:
                env.close()
            env, env_key = make_env(shift, severity), (shift, severity)
            check_period(env, recorder, shift, severity)
        result = run_episode(env, agent, seed=seed, record_keys=record_keys, labels={"shift": shift, "severity": severity})
        notes = note_meta(result)
        recorder.write(result.steps, result.decisions, result.labels, optional_meta=notes, optional_data=result.optional_keys)
        alarmed = bool(np.any([d.verdict.alarm for d in result.decisions if d.verdict is not None]))
        summary.add_episode(result, alarmed, notes)
        bar.update(1)
        bar.set_postfix(shift=shift, sev=f"{severity:.2f}", ok=int(result.success))
    bar.close()
    if env is not None:
        env.close()
    recorder.finish()
    summary.count_store(recorder.store)
    return summary
