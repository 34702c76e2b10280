"""Calibration independent of the fit: which episodes a monitor was fitted on, and the check that
calibration episodes are not among them (the conformal guarantee assumes they are not)."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from calibration import Threshold
from fiper.storage import EpisodeStore


def embedding_digest(embeddings: np.ndarray) -> str:
    """One episode's recorded embeddings (N, D), as stored, in 16 hex digits: two episodes with the same digest are one
    rollout recorded twice (a scene replayed with the same sampling seed, or an episode stored in two places)."""
    return hashlib.sha1(np.ascontiguousarray(embeddings).tobytes()).hexdigest()[:16]


def fit_record(store: EpisodeStore, episodes: np.ndarray) -> dict[str, Any]:
    """Which episodes a monitor is fitted on: the store (path and id), their indices and seeds, and the digests of
    their recorded embeddings (None for a store without them, e.g. demonstrations)."""
    seeds = store.meta("seed")[episodes].astype(np.int64).tolist() if "seed" in store.meta_keys else None
    digests = None
    if "embedding" in store.decision_keys:
        embeddings = np.asarray(store.read_decisions("embedding"))
        digests = [embedding_digest(embeddings[store.decision_slice(int(i))]) for i in episodes]
    return {"store": str(Path(store.path).resolve()), "store_id": store.attrs.get("store_id"),
            "episodes": np.asarray(episodes, dtype=np.int64).tolist(), "seeds": seeds, "digests": digests}


def overlap_with_fit(fit_data: dict[str, Any] | None, store: EpisodeStore, episodes: np.ndarray) -> str | None:
    """Why calibration episodes are not independent of the fit episodes (None if they are, or unknown).

    Episodes overlap when they are the same episodes of the same store, share a seed (the same
    initial state, often the same rollout, recorded in another store), or repeat a fit episode's recorded
    embeddings exactly (the same rollout, recorded without seeds)."""
    if not fit_data:
        return None
    mine = fit_record(store, episodes)
    if mine["store_id"] is not None and fit_data.get("store_id") is not None:
        same_store = mine["store_id"] == fit_data["store_id"]  # a store replaced at the same path is another store
    else:
        same_store = mine["store"] == fit_data.get("store")
    shared = sorted(set(mine["episodes"]) & set(fit_data.get("episodes") or [])) if same_store else []
    if shared:
        return f"{len(shared)} of its {len(episodes)} calibration episodes of {store.path} were fitted on (episodes {shared[:5]}...)"
    seeds = sorted((set(mine["seeds"] or []) & set(fit_data.get("seeds") or [])) - {-1})
    if seeds:
        return (f"{len(seeds)} calibration episodes of {store.path} share their seed with a fit episode of {fit_data.get('store')} "
                f"(seeds {seeds[:5]}...)")
    fitted = set(fit_data.get("digests") or [])
    repeats = [e for e, d in zip(mine["episodes"], mine["digests"] or []) if d in fitted]
    if repeats:
        return (f"{len(repeats)} calibration episodes of {store.path} repeat a fit episode of {fit_data.get('store')} decision "
                f"for decision (episodes {repeats[:5]}...: the same recorded embeddings, a scene replayed with the same "
                "sampling seed or an episode stored twice)")
    return None


def check_independent(fit_data: dict[str, Any] | None, store: EpisodeStore, episodes: np.ndarray, *, allow_overlap: bool = False) -> str | None:
    """Refuse calibration episodes that overlap the fit episodes (the conformal guarantee needs
    calibration data independent of the fit); with ``allow_overlap`` return the reason instead, so
    the thresholds can be marked not guaranteed."""
    why = overlap_with_fit(fit_data, store, episodes)
    if why and not allow_overlap:
        raise ValueError(
            f"calibration refused: {why}. The conformal guarantee needs calibration episodes independent of those the "
            "scores were fitted on. Record calibration rollouts of other scenes, with disjoint seeds (e.g. `python -m "
            "launch.stress ... seeds.start=20000`), or pass allow_overlap=true to calibrate anyway with thresholds marked guaranteed=False"
        )
    return why


def without_guarantee(thresholds: dict[str, Threshold], why: str) -> dict[str, Threshold]:
    """The same thresholds marked guaranteed=False, with the reason in their params."""
    return {n: replace(t, guaranteed=False, params={**t.params, "not_guaranteed": why}) for n, t in thresholds.items()}
