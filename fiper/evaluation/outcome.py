"""The outcome sweep's analysis: read the store run without fiper and one store per response, pair their
episodes by (shift, severity, seed), and count what each response changed, overall and per cell.

The episode outcomes and the pairing are defined in ``fiper.control.outcome``; the renderers
(``fiper.evaluation.render.outcome``) turn the ``OutcomeReport`` into a terminal table, outcome.md,
outcome.json and a plot.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from typing import Any
from pathlib import Path

import numpy as np

from fiper.control.outcome import FALLBACK_PREFIX, STEER, EpisodeRecord, ResponseOutcome, compare, count_outcomes
from fiper.control.period import positive_seconds
from fiper.evaluation.reward_outcome import reward_outcomes
from fiper.storage import EpisodeStore

META_KEYS = ("success", "failure_step", "failure_reason", "shift", "severity", "seed")
DECISION_KEYS = ("env_step", "alarm", "intervention", "timing/total_ms")

Cell = tuple[str, float]


def _first_step(flags: np.ndarray, steps: np.ndarray) -> int:
    hit = np.flatnonzero(flags)
    return int(steps[hit[0]]) if hit.size else -1


def _stop_step(handed: np.ndarray, steps: np.ndarray) -> int:
    """Env step from which the fallback held control to the episode's end (the trailing run of decisions handed to
    it); -1 when the last decision was not: a response that handed control back (a return and retry) did not stop."""
    if not handed.size or not handed[-1]:
        return -1
    run = int(np.argmin(handed[::-1])) if not handed.all() else handed.size
    return int(steps[handed.size - run])


def read_records(path: str | os.PathLike) -> tuple[list[EpisodeRecord], float]:
    """The episodes of a store recorded by the control loop (``launch.act``, ``launch.stress``) and its control period
    (seconds per env step; NaN when the store records none)."""
    store = EpisodeStore.open(path)
    missing = [f"meta/{k}" for k in META_KEYS if k not in store.meta_keys]
    missing += [f"decisions/{k}" for k in DECISION_KEYS if k not in store.decision_keys]
    missing += [] if "action" in store.data_keys else ["data/action"]
    if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)}, which the outcome of its episodes needs; record it with "
                         "`python -m launch.act` (or launch.stress), which writes every one of them")
    meta = {k: store.meta(k) for k in META_KEYS}
    dec = {k: store.read_decisions(k) for k in DECISION_KEYS}
    actions = np.asarray(store.read_data("action"))
    ep_ends, dec_ends = store.episode_ends, store.decision_ends
    records = []
    for i in range(store.n_episodes):
        d0, d1 = (int(dec_ends[i - 1]) if i else 0), int(dec_ends[i])
        s0, s1 = (int(ep_ends[i - 1]) if i else 0), int(ep_ends[i])
        steps = np.asarray(dec["env_step"][d0:d1], dtype=np.int64)
        acting = np.asarray(dec["intervention"][d0:d1]).astype(str)
        records.append(EpisodeRecord(
            shift=str(meta["shift"][i]), severity=float(meta["severity"][i]), seed=int(meta["seed"][i]),
            success=bool(meta["success"][i]), failure_step=int(meta["failure_step"][i]), failure_reason=str(meta["failure_reason"][i]),
            alarm_step=_first_step(np.asarray(dec["alarm"][d0:d1], dtype=bool), steps),
            stop_step=_stop_step(np.char.startswith(acting, FALLBACK_PREFIX), steps),
            acted_step=_first_step(acting != "none", steps),
            decision_steps=steps, decision_ms=np.asarray(dec["timing/total_ms"][d0:d1], dtype=np.float64),
            decision_steered=acting == STEER,
            actions=actions[s0:s1]))
    period = store.attrs.get("control_period_s")
    fix = "correct the store's attr (EpisodeStore.open(path, mode='a').set_attrs(control_period_s=...))"
    return records, positive_seconds(period, f"{path}: attrs control_period_s", fix) if period is not None else float("nan")


@dataclass(frozen=True)
class OutcomeReport:
    """Every response against the run without fiper: over all cells and per (shift, severity)."""

    task: str
    control_period_s: float
    cells: tuple[Cell, ...]
    seeds: int  # distinct seeds run without fiper
    without: dict[str, int]  # outcomes of every episode run without fiper
    without_per_cell: dict[Cell, dict[str, int]]
    overall: dict[str, ResponseOutcome]
    per_cell: dict[Cell, dict[str, ResponseOutcome]]
    stores: dict[str, str]  # 'without' and each response -> store path


def _same_period(periods: Mapping[str, float]) -> float:
    known = {name: p for name, p in periods.items() if not math.isnan(p)}
    values = sorted(set(known.values()))
    if len(values) > 1 and not np.allclose(values, values[0], rtol=1e-6):
        raise ValueError("the stores record different control periods (" + ", ".join(f"{n}: {p:g} s" for n, p in known.items())
                         + "); pair only stores recorded on the same env")
    return values[0] if values else float("nan")


def outcome_report(without: str | os.PathLike, responses: Mapping[str, str | os.PathLike], *, task: str = "",
                   keys: Collection[tuple[str, float, int]] | None = None, steering: Mapping[str, Any] | None = None,
                   make_env: Callable[[str, float], Any] | None = None,
                   contexts: Mapping[str, Any] | None = None) -> OutcomeReport:
    """Read the store ``without`` fiper and each response's store, and compare them on their shared seeds; ``keys``
    (shift, severity rounded to 6 digits, seed) keeps only those episodes (a store may hold more from earlier sweeps).
    ``steering`` (response name -> the built response, or its steering) adds, for each response that steers with a
    reward, that reward on the chunks both runs executed (``ResponseOutcome.reward``,
    ``fiper.evaluation.reward_outcome``); ``make_env(shift, severity)`` builds the env a reward reading the scene
    is bound to, reset with each episode's seed; ``contexts`` (response name -> its FallbackContext) say where a
    velocity steering's executed chunks started."""
    if not responses:
        raise ValueError("no response stores to compare: name at least one response (responses=[hold])")
    wanted = None if keys is None else set(keys)

    def read(path):
        records, period = read_records(path)
        return [r for r in records if wanted is None or r.key in wanted], period

    base, base_period = read(without)
    if not base:
        raise ValueError(f"{without} holds none of the episodes asked for; run them first (python -m launch.act)")
    arms, periods = {}, {"without": base_period}
    for name, path in responses.items():
        arms[name], periods[name] = read(path)
    period = _same_period(periods)
    cells = tuple(sorted({(r.shift, r.severity) for r in base}, key=lambda c: (c[0] != "none", c)))  # in distribution first
    overall = {name: compare(name, base, recs, period) for name, recs in arms.items()}
    unpaired = [name for name, res in overall.items() if res.episodes == 0]
    if unpaired:
        raise ValueError(f"the stores of {unpaired} share no (shift, severity, seed) with {without}; run them over the same "
                         "cells and seeds (python -m launch.act resumes every store together)")
    per_cell = {}
    for shift, sev in cells:
        base_c = [r for r in base if r.key[:2] == (shift, round(sev, 6))]
        per_cell[(shift, sev)] = {name: compare(name, base_c, [r for r in recs if r.key[:2] == (shift, round(sev, 6))], period)
                                  for name, recs in arms.items()}
    if steering:
        scored = reward_outcomes(without, responses, steering, make_env=make_env, keys=wanted, contexts=contexts)
        overall = {n: replace(res, reward=scored[n][None]) if n in scored else res for n, res in overall.items()}
        per_cell = {c: {n: replace(res, reward=scored[n][(c[0], round(c[1], 6))]) if n in scored else res for n, res in arms_c.items()}
                    for c, arms_c in per_cell.items()}
    seeds = len({r.seed for r in base})
    counts = {cell: count_outcomes(r.outcome for r in base if r.key[:2] == (cell[0], round(cell[1], 6))) for cell in cells}
    stores = {"without": str(without), **{n: str(p) for n, p in responses.items()}}
    return OutcomeReport(task or str(EpisodeStore.open(without).attrs.get("task", "")), period, cells, seeds,
                         count_outcomes(r.outcome for r in base),
                         counts, overall, per_cell, stores)



def store_paths(out: str | os.PathLike, responses) -> tuple[Path, dict[str, Path]]:
    """Where ``launch.act`` keeps the store without fiper and each response's store inside ``out``."""
    out = Path(out)
    return out / "without.zarr", {name: out / f"{name}.zarr" for name in responses}
