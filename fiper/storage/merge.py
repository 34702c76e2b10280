"""Merge the stores of one sweep (one per job) into one durable store, losing and duplicating no episode.

Every source must come from the same origin: the same fingerprint (policy, monitor, env, sampling
settings; ``docs/rollout_format.md``), task, control period (a plausible one, fiper.control.period, recorded by
every source or by none) and the same arrays with the same per-row
shapes and dtypes. An episode whose shift, severity and seed (under that fingerprint) an earlier
source already holds is an exact duplicate (a sweep point run twice) and is skipped and counted.
Sources are only read; the merged store is built in a hidden sibling of ``out`` and renamed into place
once it reads back complete (fiper.storage.building), so a failed or interrupted merge leaves nothing at ``out``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fiper.control.period import positive_seconds
from fiper.fingerprint import differences
from fiper.storage.building import build_store
from fiper.storage.errors import StoreError
from fiper.storage.repair import episode_rows
from fiper.storage.store import EpisodeStore
from fiper.storage.writer_lock import writer_of

IDENTITY_LABELS = ("shift", "severity", "seed")  # with the fingerprint: what makes two episodes the same sweep point
EXISTS_FIX = ("merge into a new path (out=<new store>), or remove it first. To add stores to a merged store, merge it with "
              "them into a new one: its episodes count as duplicates")
SAME_ATTRS = ("task", "control_period_s", "n_action_steps", "num_samples", "policy_fingerprint")
#: Per-episode labels a store may be recorded without (launch.stress's notes: fiper.control.sweep.NOTE_META): a source
#: lacking one merges, and the merged store keeps it only when every source records it.
OPTIONAL_META = ("clipped_steps", "clip_excess", "unread_info")
#: Per-decision keys a store may be recorded without (the control loop's steering stage), treated the same way.
OPTIONAL_DECISIONS = ("steer_stage",)


class MergeError(StoreError):
    """Stores that cannot be merged: different origins, shapes or labels, or an output in the way."""


@dataclass
class MergeOutcome:
    """What a merge wrote: episodes taken from each source and the exact duplicates it skipped."""

    out: Path
    sources: list[Path]
    taken: list[int] = field(default_factory=list)  # per source, episodes written
    duplicates: list[int] = field(default_factory=list)  # per source, episodes skipped as exact duplicates

    @property
    def n_episodes(self) -> int:
        return sum(self.taken)

    @property
    def n_duplicates(self) -> int:
        return sum(self.duplicates)

    def describe(self) -> str:
        n = len(self.sources)
        lines = [f"merged {n} store{'s' if n != 1 else ''} into {self.out}: {self.n_episodes} episodes, "
                 f"{self.n_duplicates} exact duplicates skipped (same shift, severity, seed and fingerprint)"]
        lines += [f"  {src}: {t} taken, {d} duplicates" for src, t, d in zip(self.sources, self.taken, self.duplicates)]
        return "\n".join(lines)


def _signature(store: EpisodeStore) -> dict[str, tuple[tuple[int, ...], str]]:
    """'group/key' -> (per-row shape, dtype) of every array episodes carry (text arrays: shape only)."""
    out = {}
    for group, keys, get in (("data", store.data_keys, store.data_array), ("decisions", store.decision_keys, store.decision_array),
                             ("meta", store.meta_keys, lambda k: store._lookup(store._meta, "meta", k))):
        for key in keys:
            arr = get(key)
            kind = "text" if arr.dtype.kind in "UOT" else str(arr.dtype)
            out[f"{group}/{key}"] = (tuple(int(n) for n in arr.shape[1:]), kind)
    return out


def _origin_problems(first: EpisodeStore, other: EpisodeStore) -> list[str]:
    """Every way ``other`` differs in origin or layout from ``first`` (empty when they merge)."""
    a, b = first.attrs, other.attrs
    fa, fb = a.get("fingerprint"), b.get("fingerprint")
    problems = []
    if (fa is None) != (fb is None):
        problems.append(f"only {first.path if fb is None else other.path} records a fingerprint")
    elif fa is not None and fa.get("digest") != fb.get("digest"):
        problems.append("fingerprints differ: " + "; ".join(differences(fa, fb) or ["(digests differ)"]))
    problems += [f"attr {k}: {a.get(k)!r} vs {b.get(k)!r}" for k in SAME_ATTRS if a.get(k) != b.get(k)]
    sa, sb = (_signature(first), _signature(other)) if first.n_episodes and other.n_episodes else ({}, {})
    for key in sorted(set(sa) | set(sb)):
        optional = key.removeprefix("meta/") in OPTIONAL_META or key.removeprefix("decisions/") in OPTIONAL_DECISIONS
        if optional and (key not in sa or key not in sb):
            continue
        if sa.get(key) != sb.get(key):
            show = lambda s: "absent" if s is None else f"rows {s[0]} {s[1]}"  # noqa: E731
            problems.append(f"{key}: {show(sa.get(key))} vs {show(sb.get(key))}")
    return problems


def _checked_periods(stores: Sequence[EpisodeStore]) -> None:
    """Every source's ``control_period_s`` is a plausible one (fiper.control.period), and all sources record it or none."""
    fix = ("correct that store's attr (EpisodeStore.open(path, mode='a').set_attrs(control_period_s=<seconds per env step>)) "
           "and merge again")
    for store in stores:
        value = store.attrs.get("control_period_s")
        if value is not None:
            try:
                positive_seconds(value, f"{store.path}: attrs control_period_s", fix)
            except ValueError as err:
                raise MergeError(str(err)) from None
    missing = [str(s.path) for s in stores if s.attrs.get("control_period_s") is None]
    if missing and len(missing) < len(stores):
        raise MergeError(f"{', '.join(missing)} record{'s' if len(missing) == 1 else ''} no control_period_s attr, which the "
                         f"other stores do; {fix.replace('that store', 'each such store')}")


def _identity(store: EpisodeStore) -> list[tuple[Any, ...]]:
    """(fingerprint digest, shift, severity, seed) of every committed episode."""
    missing = [k for k in IDENTITY_LABELS if k not in store.meta_keys]
    if missing:
        raise MergeError(f"{store.path} has no meta/{', meta/'.join(missing)}, so its episodes cannot be told apart from "
                         "another store's: merge only stores recorded by launch.stress or launch.collect (they label every "
                         "episode with its shift, severity and seed)")
    digest = (store.attrs.get("fingerprint") or {}).get("digest")
    columns = [store.meta(k) for k in IDENTITY_LABELS]
    return [(digest, str(sh), float(sev), int(seed)) for sh, sev, seed in zip(*columns)]


def merge_stores(sources: Sequence[str | os.PathLike], out: str | os.PathLike) -> MergeOutcome:
    """Write every episode of ``sources`` (in order, skipping exact duplicates) into a new store ``out``.

    Raises MergeError, naming each store and difference, for sources of different origins or layouts,
    an ``out`` that exists or is one of the sources, or no source; a damaged source raises
    DamagedStoreError with its repair command. The sources are never modified.
    """
    paths = [Path(p) for p in sources]
    out = Path(out)
    if not paths:
        raise MergeError("no stores to merge: pass the stores of one sweep, e.g. stores='runs/sweep/stress_*.zarr'")
    if out.exists():
        raise MergeError(f"{out} already exists; {EXISTS_FIX}")
    resolved = [p.resolve() for p in paths]
    if len(set(resolved)) != len(resolved):
        twice = sorted({str(p) for p in resolved if resolved.count(p) > 1})
        raise MergeError(f"these stores are given more than once: {', '.join(twice)}; pass each store once")
    writing = [f"{p} ({holder})" for p in paths if (holder := writer_of(p))]
    if writing:
        raise MergeError(f"still being written: {', '.join(writing)}; a merge now would miss the episodes those jobs have "
                         "yet to record. Merge once every job of the sweep has finished")
    stores = [EpisodeStore.open(p) for p in paths]
    _checked_periods(stores)
    reference = next((s for s in stores if s.n_episodes), stores[0])  # an empty store has no arrays to compare
    for store in stores:
        problems = _origin_problems(reference, store) if store is not reference else []
        if problems:
            raise MergeError(f"{store.path} cannot be merged with {reference.path}: " + "; ".join(problems) + ". Only stores "
                             "of one sweep merge (same policy, monitor, env, sampling settings and arrays); evaluate stores "
                             "of different origins together with python -m launch.evaluate rollouts=[a.zarr,b.zarr] instead")
    identities = [_identity(s) for s in stores]
    attrs = {k: v for k, v in reference.attrs.items() if k != "store_id"}
    attrs["merged_from"] = [{"store_id": s.attrs.get("store_id"), "path": str(p), "episodes": s.n_episodes}
                            for s, p in zip(stores, paths)]
    outcome = MergeOutcome(out, paths)
    dropped = {k for k in OPTIONAL_META if any(s.n_episodes and k not in s.meta_keys for s in stores)}
    dropped_decisions = {k for k in OPTIONAL_DECISIONS if any(s.n_episodes and k not in s.decision_keys for s in stores)}

    def fill(merged: EpisodeStore) -> None:
        seen: set[tuple[Any, ...]] = set()
        for store, ids in zip(stores, identities):
            taken = skipped = 0
            for i, key in enumerate(ids):
                if key in seen:
                    skipped += 1
                    continue
                seen.add(key)
                data, decisions, labels = episode_rows(store, i)
                merged.append_episode(data, decisions={k: v for k, v in decisions.items() if k not in dropped_decisions},
                                      meta={k: v for k, v in labels.items() if k not in dropped})
                taken += 1
            outcome.taken.append(taken)
            outcome.duplicates.append(skipped)
        written = EpisodeStore.open(merged.path).n_episodes
        if written != outcome.n_episodes:
            raise MergeError(f"the merged copy {merged.path} reads back {written} episodes, expected {outcome.n_episodes}")

    build_store(out, fill, attrs=attrs, exists_fix=EXISTS_FIX)
    return outcome
