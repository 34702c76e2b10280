"""Data for fitting and calibrating a monitor, from a store with or without recorded decisions.

Rollout stores carry ``decisions/embedding`` and ``decisions/samples``; demonstration stores do
not, and then the policy is replayed on their observations (fiper.monitor.decisions).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from calibration import Threshold
from fiper.monitor.decisions import replay_decisions
from fiper.monitor.identity import PolicyIdentity
from fiper.scores.base import ScoreFitData
from fiper.storage import EpisodeStore


def has_decisions(store: EpisodeStore) -> bool:
    return {"embedding", "samples"} <= set(store.decision_keys)


def successful_in_distribution(store: EpisodeStore) -> np.ndarray:
    """Indices of episodes labelled successful and unshifted (all episodes if unlabelled, e.g. demos)."""
    keep = np.ones(store.n_episodes, dtype=bool)
    if "success" in store.meta_keys:
        keep &= store.meta("success").astype(bool)
    if "shift" in store.meta_keys:
        keep &= store.meta("shift").astype(str) == "none"
    return np.flatnonzero(keep)


def load_decisions(
    store: EpisodeStore,
    *,
    episodes: np.ndarray | None = None,
    policy: Any = None,
    num_samples: int = 32,
    seed: int = 0,
    device: Any = "cpu",
) -> tuple[ScoreFitData, PolicyIdentity]:
    """Fit data of ``episodes`` and the shapes of the policy that produced it.

    Recorded decisions are used when the store has them (their shapes define the identity; a
    given ``policy`` must match them), else the policy is replayed on the stored observations.
    """
    episodes = np.arange(store.n_episodes) if episodes is None else np.asarray(episodes, dtype=np.int64)
    if len(episodes) == 0:
        raise ValueError(f"{store.path}: no episodes selected (need successful in-distribution episodes)")
    if has_decisions(store):
        data = ScoreFitData.from_store(store, episodes=episodes, seed=seed, device=device)
        b, h, a = (int(x) for x in data.samples.shape[1:])
        recorded = PolicyIdentity(int(data.embeddings.shape[1]), b, h, a, int(store.attrs.get("n_action_steps", 1)),
                                  str(store.attrs.get("policy_name", "")), store.attrs.get("policy_fingerprint"))
        if policy is not None:
            given = PolicyIdentity.of(policy, b)
            given.check_shapes(recorded, source=f"{store.path} (its recorded decisions)")
            if recorded.fingerprint is not None and given.fingerprint != recorded.fingerprint:
                raise ValueError(f"{store.path} holds decisions recorded by another policy (weights sha256 {recorded.fingerprint[:12]}) "
                                 f"than the one given ({given.fingerprint and given.fingerprint[:12]}); fit on rollouts of this "
                                 "policy, or leave out policy_dir= to fit for the recording policy")
            return data, given
        return data, recorded
    if policy is None:
        raise ValueError(
            f"{store.path} has no recorded decisions (decisions/embedding, decisions/samples); "
            "pass the policy checkpoint (policy_dir=<dir>) so its decisions can be replayed on the observations"
        )
    batch = replay_decisions(policy, store, num_samples, episodes=episodes, seed=seed)
    data = ScoreFitData(batch.embeddings, batch.samples, batch.decision_ends, seed=seed, device=device)
    return data, PolicyIdentity.of(policy, num_samples)


def fit_record(store: EpisodeStore, episodes: np.ndarray) -> dict[str, Any]:
    """Which episodes a monitor is fitted on: the store (path and id) and their indices and seeds."""
    seeds = store.meta("seed")[episodes].astype(np.int64).tolist() if "seed" in store.meta_keys else None
    return {"store": str(Path(store.path).resolve()), "store_id": store.attrs.get("store_id"),
            "episodes": np.asarray(episodes, dtype=np.int64).tolist(), "seeds": seeds}


def overlap_with_fit(fit_data: dict[str, Any] | None, store: EpisodeStore, episodes: np.ndarray) -> str | None:
    """Why calibration episodes are not independent of the fit episodes (None if they are, or unknown).

    Episodes overlap when they are the same episodes of the same store, or share a seed (the same
    initial state, often the same rollout, recorded in another store)."""
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
    return None


def check_independent(fit_data: dict[str, Any] | None, store: EpisodeStore, episodes: np.ndarray, *, allow_overlap: bool = False) -> str | None:
    """Refuse calibration episodes that overlap the fit episodes (the conformal guarantee needs
    calibration data independent of the fit); with ``allow_overlap`` return the reason instead, so
    the thresholds can be marked not guaranteed."""
    why = overlap_with_fit(fit_data, store, episodes)
    if why and not allow_overlap:
        raise ValueError(
            f"calibration refused: {why}. The conformal guarantee needs calibration episodes independent of those the "
            "scores were fitted on. Record calibration rollouts with disjoint seeds (e.g. `python -m launch.stress ... "
            "seeds.start=20000`), or pass allow_overlap=true to calibrate anyway with thresholds marked guaranteed=False"
        )
    return why


def without_guarantee(thresholds: dict[str, Threshold], why: str) -> dict[str, Threshold]:
    """The same thresholds marked guaranteed=False, with the reason in their params."""
    return {n: replace(t, guaranteed=False, params={**t.params, "not_guaranteed": why}) for n, t in thresholds.items()}
