"""Turn one monitored episode (steps + decisions) into the rollout-store contract and append it."""

from __future__ import annotations

import shutil
import uuid
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fiper.control.decision import Decision
from fiper.control.monitored_policy import MonitoredPolicy
from fiper.fingerprint import FingerprintMismatch, differences, same, software_versions
from fiper.label_notes import DEFAULT_TERMINATED
from fiper.monitor.identity import policy_fingerprint
from fiper.storage import EpisodeStore, StoreError
from fiper.storage.merge import OPTIONAL_DECISIONS

TIMING_PHASES = ("encode", "sample", "monitor", "intervention", "total")


def decision_arrays(decisions: Sequence[Decision], score_names: Sequence[str], sample_dtype: str = "float16") -> dict[str, np.ndarray]:
    """Per-decision arrays (N, ...) of the contract: embedding, samples, scores, ratios, alarm, ..."""
    if not decisions:
        raise ValueError("an episode without decisions cannot be recorded: the policy never acted")
    nan = float("nan")
    out: dict[str, np.ndarray] = {
        "embedding": np.stack([d.embedding for d in decisions]).astype(np.float32),
        "samples": np.stack([d.samples for d in decisions]).astype(sample_dtype),
        "executed": np.stack([d.executed for d in decisions]).astype(np.float32),
        "env_step": np.array([d.env_step for d in decisions], dtype=np.int64),
        "alarm": np.array([bool(d.verdict and d.verdict.alarm) for d in decisions]),
        "failsafe": np.array([bool(d.verdict and d.verdict.failsafe) for d in decisions]),
        "combined_ratio": np.array([d.verdict.combined_ratio if d.verdict else nan for d in decisions]),
        "reason": np.array([d.verdict.reason if d.verdict else "" for d in decisions], dtype=str),
        "intervention": np.array([d.intervention for d in decisions], dtype=str),
        "steered": np.array([d.steered for d in decisions]),
        "steer_stage": np.array([d.steer_stage for d in decisions], dtype=np.int64),
        "overrun": np.array([d.overrun for d in decisions]),
    }
    for phase in TIMING_PHASES:
        out[f"timing/{phase}_ms"] = np.array([d.timing_ms.get(phase, nan) for d in decisions], dtype=np.float32)
    for name in score_names:
        for field in ("scores", "windowed", "thresholds", "ratios"):
            key = {"scores": "score", "windowed": "windowed", "thresholds": "threshold", "ratios": "ratio"}[field]
            out[f"{key}/{name}"] = np.array([getattr(d.verdict, field).get(name, nan) if d.verdict else nan for d in decisions])
    return out


def episode_meta(decisions: Sequence[Decision], labels: Mapping[str, Any], n_steps: int | None = None) -> dict[str, Any]:
    """Episode labels plus where the first alarm and the first intervention happened.

    A failure labelled without ``failure_step`` or ``failure_reason`` gets episode_labels' defaults for an env that names
    none: its last step (``n_steps`` - 1) and ``'terminated'``, so it is never recorded as a failure at step -1."""
    success = bool(labels.get("success", False))
    last = n_steps - 1 if n_steps else -1
    first = next((d for d in decisions if d.verdict is not None and d.verdict.alarm), None)
    acted = next((d for d in decisions if d.intervention != "none"), None)
    meta = {
        "success": success,
        "failure_step": int(labels.get("failure_step", -1 if success else last)),
        "failure_reason": str(labels.get("failure_reason", "" if success else DEFAULT_TERMINATED)),
        "shift": str(labels.get("shift", "none")),
        "severity": float(labels.get("severity", 0.0)),
        "seed": int(labels.get("seed", -1)),
        "first_alarm_step": first.env_step if first else -1,
        "first_alarm_decision": decisions.index(first) if first else -1,
        "first_intervention_step": acted.env_step if acted else -1,
        "n_decisions": len(decisions),
    }
    meta.update({k: v for k, v in labels.items() if k not in meta})
    return meta


def _n_steps(steps: Mapping[str, Any]) -> int | None:
    action = steps.get("action")
    return len(action) if action is not None and np.ndim(action) else None


def policy_attrs(policy: Any) -> dict[str, Any]:
    """What a store records of the policy that acted (a GenerativePolicy, or the MonitoredPolicy running one): its
    weights fingerprint, which a monitor fitted on the store then carries, and its env steps per decision."""
    inner = policy.policy if isinstance(policy, MonitoredPolicy) else policy
    steps = getattr(inner, "n_action_steps", None)
    return {"policy_fingerprint": policy_fingerprint(inner),
            **({"n_action_steps": int(steps)} if isinstance(steps, (int, np.integer)) and not isinstance(steps, bool) else {})}


class RolloutRecorder:
    """Appends monitored episodes to a rollout store, one atomic episode at a time.

    The store is created at the first episode, so a run that records nothing leaves no store; its attrs record the
    versions of the software the episodes depend on (``software``: fiper, mujoco, torch, ...). With
    a ``fingerprint`` (``fiper.fingerprint.make_fingerprint`` of the policy, monitor, env and
    sampling settings) the store records it, and an existing store made by a different fingerprint
    is refused (FingerprintMismatch naming the keys that differ): a store never mixes episodes of
    different origins. ``overwrite=True`` replaces an existing store at the first episode instead: its episodes
    are moved to the sibling ``replaced`` (``<name>.replaced-<id>``), deleted by ``finish()`` once the run has
    recorded what it was to, so a run that fails on the way leaves them there. An existing store without
    episodes is replaced at once (nothing is lost). With ``policy`` (the policy, or the
    MonitoredPolicy running it) the store records ``policy_attrs`` and refuses episodes of another policy's weights.
    """

    def __init__(self, path: Any, *, score_names: Sequence[str] = (), attrs: Mapping[str, Any] | None = None,
                 sample_dtype: str = "float16", fingerprint: Mapping[str, Any] | None = None, overwrite: bool = False,
                 policy: Any = None):
        self.path = Path(path)
        known, given = policy_attrs(policy) if policy is not None else {}, dict(attrs or {})
        clash = sorted(k for k in known if k in given and given[k] != known[k])
        if clash:
            raise ValueError(f"RolloutRecorder({self.path}): attrs {', '.join(f'{k}={given[k]!r}' for k in clash)} contradict the "
                             f"policy given ({', '.join(f'{k}={known[k]!r}' for k in clash)}); leave them out of attrs, policy= records them")
        self.attrs = {"software": software_versions(), **known, **given, **({"fingerprint": dict(fingerprint)} if fingerprint else {})}
        self.fingerprint = dict(fingerprint) if fingerprint else None
        self.score_names, self.sample_dtype = tuple(score_names), sample_dtype
        self.store: EpisodeStore | None = None
        self.replaced: Path | None = None  # where overwrite=True moved the old store's episodes until finish()
        self._replace = overwrite
        if self.path.exists() and not overwrite:
            existing = EpisodeStore.open(self.path, mode="a")
            if existing.n_episodes == 0:
                self._replace = True  # an empty store keeps nothing worth its attrs: recreated with this run's
            else:
                self._check_origin(existing)
                self.store = existing

    def _check_origin(self, store: EpisodeStore) -> None:
        was, now = (store.attrs.get("software") or {}).get("mujoco"), self.attrs["software"].get("mujoco")
        if was and now and was != now:
            raise FingerprintMismatch(
                f"refusing to append to {self.path} ({store.n_episodes} episodes): they were simulated with mujoco {was} and "
                f"this run has mujoco {now}, whose contacts can differ for the same seed and actions. A store never mixes "
                "episodes of different origins: record into a new store (out=<new path>), replace this one (overwrite=true; "
                f"its episodes are deleted once the new run has recorded all of its own), or install mujoco=={was} to finish it")
        recorded = store.attrs.get("fingerprint")
        if recorded is None and self.fingerprint is None:  # a library user's own store: the policy's weights, if both record them
            why = self._other_policy(store)
        elif same(recorded, self.fingerprint or {"digest": None}):
            why = None
        elif recorded is None:
            why = "it records no fingerprint of the policy, monitor and env that produced its episodes"
        elif self.fingerprint is None:
            why = "it records a fingerprint and this recorder was given none"
        else:
            why = "its episodes came from different settings: " + "; ".join(differences(recorded, self.fingerprint))
        if why is None:
            return
        raise FingerprintMismatch(
            f"refusing to append to {self.path} ({store.n_episodes} episodes): {why}. A store never mixes episodes of "
            "different origins: record into a new store (out=<new path>), or replace this one (overwrite=true; "
            "its episodes are deleted once the new run has recorded all of its own)"
        )

    def _other_policy(self, store: EpisodeStore) -> str | None:
        """Why the store's episodes come from other weights than this recorder's policy (None: they do not, or one side is unknown)."""
        was, now = store.attrs.get("policy_fingerprint"), self.attrs.get("policy_fingerprint")
        if was and now and was != now:
            return (f"its episodes were recorded by another policy (weights sha256 {str(was)[:12]}, this one's {str(now)[:12]}), "
                    "and a monitor fitted on both would describe neither")
        return None

    def write(self, steps: Mapping[str, np.ndarray], decisions: Sequence[Decision], labels: Mapping[str, Any],
              *, optional_meta: Mapping[str, Any] | None = None, optional_data: Sequence[str] = ()) -> int:
        """Append one episode: per-step arrays (T, ...), its decisions, and its labels. ``optional_meta`` are per-episode
        labels recorded when the store is new or already records them: a store whose episodes lack one is appended without
        it, since every episode of a store has the same keys (merge_stores keeps fiper.storage.merge.OPTIONAL_META
        only when every source records them); the decisions' OPTIONAL_DECISIONS and the ``optional_data`` keys of
        ``steps`` (the env's keys recorded only by default: EpisodeResult.optional_keys) likewise."""
        arrays = decision_arrays(decisions, self.score_names, self.sample_dtype)  # before the store exists: no empty store on error
        meta = episode_meta(decisions, labels, _n_steps(steps))
        keep = self.store.meta_keys if self.store is not None and self.store.n_episodes else None
        if keep is not None and "failure_reason" not in keep and "failure_reason" not in labels:
            del meta["failure_reason"]  # a store begun without the label (by an earlier version) stays without it
        meta.update({k: v for k, v in (optional_meta or {}).items() if k not in meta and (keep is None or k in keep)})
        if keep is not None:  # a store begun without an optional decision key (by an earlier version) stays without it
            arrays = {k: v for k, v in arrays.items() if k not in OPTIONAL_DECISIONS or k in self.store.decision_keys}
            steps = {k: v for k, v in steps.items() if k not in optional_data or k in self.store.data_keys}
        if self.store is None:
            self._set_aside()
            self.store = EpisodeStore.create(self.path, attrs=self.attrs, overwrite=self._replace)
        return self.store.append_episode(dict(steps), decisions=arrays, meta=meta)

    def _set_aside(self) -> None:
        """Move a store that overwrite=True replaces out of the way, whole, instead of deleting it before the new one exists."""
        if not (self._replace and self.path.exists()):
            return
        try:
            if EpisodeStore.open(self.path, mode="r").n_episodes == 0:
                return
        except (StoreError, OSError, ValueError):  # damaged, or not a store: whatever it holds is kept whole too
            pass
        aside = self.path.with_name(f"{self.path.name}.replaced-{uuid.uuid4().hex[:8]}")
        self.path.rename(aside)
        self.replaced = aside
        warnings.warn(f"replacing {self.path} (overwrite): its episodes are kept at {aside} until this run has recorded "
                      "all of its own, then deleted; if it stops before, move them back or delete them", stacklevel=3)

    def finish(self) -> None:
        """The run recorded everything it was to: delete the store that ``overwrite=True`` replaced, if any."""
        if self.replaced is not None:
            shutil.rmtree(self.replaced)
            self.replaced = None
