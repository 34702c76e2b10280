"""Data for fitting and calibrating a monitor, from a store with or without recorded decisions.

Rollout stores carry ``decisions/embedding`` and ``decisions/samples``; demonstration stores do
not, and then the policy is replayed on their observations (fiper.monitor.decisions).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from fiper.monitor.decisions import replay_decisions
from fiper.monitor.identity import PolicyIdentity
from fiper.scores.base import ScoreFitData
from fiper.scores.fit_data import warn_unselected
from fiper.scores.inputs import RowSubset
from fiper.scores.observations import attr_n_action_steps, store_observations
from fiper.storage import EpisodeStore

DEFAULT_NUM_SAMPLES = 32  # B: chunks sampled per decision when a policy is replayed and nothing sets B


def has_decisions(store: EpisodeStore) -> bool:
    return {"embedding", "samples"} <= set(store.decision_keys)


def _labels(store: EpisodeStore) -> tuple[np.ndarray, np.ndarray]:
    """Per episode: labelled successful, and unshifted (True where the store has no such label)."""
    every = np.ones(store.n_episodes, dtype=bool)
    success = store.meta("success").astype(bool) if "success" in store.meta_keys else every
    unshifted = store.meta("shift").astype(str) == "none" if "shift" in store.meta_keys else every
    return success, unshifted


def response_acted(store: EpisodeStore) -> np.ndarray:
    """Indices of the episodes in which a response acted (meta/first_intervention_step >= 0: a fallback or steering
    set off by the live monitor's alarm or by a fault)."""
    if "first_intervention_step" not in store.meta_keys:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.asarray(store.meta("first_intervention_step")).astype(np.int64) >= 0)


def response_acted_text(store: EpisodeStore, acted: np.ndarray, why: str) -> str:
    """The refusal of episodes in which a response acted: which, ``why`` they cannot be used here, and what to record."""
    return (f"{store.path}: a response acted in {acted.size} of its {store.n_episodes} episodes (meta/first_intervention_step "
            f">= 0: episodes {acted[:8].tolist()}{' ...' if acted.size > 8 else ''}); {why}. Record rollouts without a "
            "response (MonitoredPolicy(policy, None), or launch.stress without response=); compare responses with launch.act "
            "(docs/interventions.md, 'Outcome sweep')")


def successful_in_distribution(store: EpisodeStore) -> np.ndarray:
    """Indices of episodes labelled successful and unshifted (all episodes if unlabelled, e.g. demos);
    none is an error that counts what the store holds and names the fixes (a monitor learns from successes), and so
    is one in which a response acted (a steered batch is not the policy's own)."""
    success, unshifted = _labels(store)
    keep = success & unshifted
    acted = np.intersect1d(response_acted(store), np.flatnonzero(keep))
    if acted.size:
        raise ValueError(response_acted_text(store, acted, "they are successful and in distribution, but a steered batch is "
                                             "not the policy's own and the live monitor's alarms chose them, so a monitor "
                                             "fitted or calibrated on them would not describe the policy"))
    if store.n_episodes and not keep.any():
        raise ValueError(
            f"{store.path}: no successful in-distribution episode to fit or calibrate on: of its {store.n_episodes} episodes "
            f"{int(success.sum())} succeeded and {int(unshifted.sum())} ran in distribution (shift 'none'), none both. The monitor "
            "learns what success looks like: record in-distribution rollouts of a policy that succeeds (train it longer or on more "
            "demonstrations), and check that the env says success (info['success'] or info['is_success'], docs/envs.md)")
    return np.flatnonzero(keep)


def parse_selection(selection: Any) -> slice | list[int]:
    """An episode selection as given: 'start:stop' (a Python slice of episode indices, either end optional) or a list of
    indices; anything else is refused with the two forms."""
    if isinstance(selection, str) and selection.count(":") == 1:
        ends = [e.strip() for e in selection.split(":")]
        if all(e == "" or e.lstrip("-").isdigit() for e in ends):
            return slice(*(int(e) if e else None for e in ends))
    elif isinstance(selection, Sequence) and not isinstance(selection, str) and selection and all(isinstance(i, int) and not isinstance(i, bool) for i in selection):
        return [int(i) for i in selection]
    raise ValueError(f"episodes={selection!r} selects no episodes: give 'start:stop' (e.g. episodes=0:80 for the first 80, "
                     "episodes=80: for the rest) or a list of episode indices (episodes=[0,1,2])")


def chosen_episodes(store: EpisodeStore, selection: Any = None) -> np.ndarray:
    """The successful in-distribution episodes among ``selection`` (None: all; see ``parse_selection``), so that one
    store can give both the fit and the calibration episodes."""
    keep = successful_in_distribution(store)
    if selection is None:
        return keep
    picked = parse_selection(selection)
    n = store.n_episodes
    if isinstance(picked, list):
        bad = [i for i in picked if not 0 <= i < n]
        if bad:
            raise ValueError(f"episodes={_shown(selection)}: {bad[:5]} not among the {n} episodes of {store.path} (indices 0 to {n - 1})")
        picked = np.unique(picked)
    else:
        picked = np.arange(n)[picked]
    out = np.intersect1d(keep, picked)
    if out.size == 0:
        raise ValueError(f"episodes={_shown(selection)} holds no successful in-distribution episode of {store.path} "
                         f"({picked.size} of its {n} episodes selected; {keep.size} successful in distribution in all)")
    return out


def left_out_text(store: EpisodeStore, episodes: np.ndarray, selection: Any = None) -> str:
    """'' when every episode of the store is used, else ' (n of the store's N, <why>, left out)'."""
    left = store.n_episodes - len(episodes)
    why = "failed or shifted" if selection is None else f"outside episodes={_shown(selection)}, failed or shifted"
    return f" ({left} of the store's {store.n_episodes}, {why}, left out)" if left else ""


def _shown(selection: Any) -> str:
    return selection if isinstance(selection, str) else str(list(selection))


def load_decisions(
    store: EpisodeStore,
    *,
    episodes: np.ndarray | None = None,
    policy: Any = None,
    num_samples: int | None = None,
    seed: int = 0,
    device: Any = "cpu",
    progress: bool = True,
) -> tuple[ScoreFitData, PolicyIdentity]:
    """Fit data of ``episodes`` and the shapes of the policy that produced it.

    Recorded decisions are used when the store has them (their shapes define the identity; a
    given ``policy`` must match them), else the policy is replayed on the stored observations,
    drawing ``num_samples`` chunks per decision (None: ``DEFAULT_NUM_SAMPLES``).
    Recorded sample batches stay in the store (a lazy ``RowSubset``): scores read them in chunks,
    so memory does not grow with the number of decisions.
    """
    if episodes is None:
        warn_unselected(store, "load_decisions")
    episodes = np.arange(store.n_episodes) if episodes is None else np.asarray(episodes, dtype=np.int64)
    if len(episodes) == 0:
        raise ValueError(f"{store.path}: no episodes selected (need successful in-distribution episodes)")
    if has_decisions(store):
        emb = ScoreFitData.from_store(store, episodes=episodes, samples=False, seed=seed, device=device)
        samples = RowSubset(store.decision_array("samples"), store.decision_rows(episodes))
        data = ScoreFitData(emb.embeddings, samples, emb.decision_ends, seed=seed, device=device)
        data = replace(data, observations=store_observations(store, episodes))  # lazy: read by raw-observation scores only
        b, h, a = (int(x) for x in data.samples.shape[1:])
        recorded = PolicyIdentity(int(data.embeddings.shape[1]), b, h, a, attr_n_action_steps(store.attrs) or 1,
                                  str(store.attrs.get("policy_name", "")), store.attrs.get("policy_fingerprint"))
        if policy is not None:
            given = PolicyIdentity.of(policy, b)
            given.check_shapes(recorded, source=f"{store.path} (its recorded decisions)")
            if recorded.fingerprint is not None and given.fingerprint != recorded.fingerprint:
                raise ValueError(f"{store.path} holds decisions recorded by another policy (weights sha256 {recorded.fingerprint[:12]}) "
                                 f"than the one given ({given.fingerprint and given.fingerprint[:12]}); fit on rollouts of this "
                                 "policy, or leave out policy_dir= / policy_factory= to fit for the recording policy")
            return data, given
        return data, recorded
    if policy is None:
        have = [f"decisions/{k}" for k in ("embedding", "samples") if k in store.decision_keys]
        raise ValueError(
            f"{store.path} records {' and '.join(have) + ' alone' if have else 'no decisions'}, but a monitor is fitted from "
            "both decisions/embedding and decisions/samples (its policy identity holds the sample shapes); pass the policy "
            "(policy_dir=<checkpoint>, or policy_factory=<module:function> for another stack) so its decisions are replayed "
            "on the stored observations"
        )
    num_samples = DEFAULT_NUM_SAMPLES if num_samples is None else int(num_samples)
    batch = replay_decisions(policy, store, num_samples, episodes=episodes, seed=seed, progress=progress)
    seen = store_observations(store, episodes, batch.env_steps, np.diff(batch.decision_ends, prepend=0))
    data = ScoreFitData(batch.embeddings, batch.samples, batch.decision_ends, seed=seed, device=device, observations=seen)
    return data, PolicyIdentity.of(policy, num_samples)
