"""Load recorded rollout stores for offline evaluation and merge them by task.

Stores are given as paths, globs, or directories holding stores (a multirun sweep). Stores of
the same task (store attrs 'task', else 'env', else the store's name) are concatenated in path
order; their embedding and sample shapes must agree.
"""

from __future__ import annotations

import dataclasses
import glob
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fiper.control.period import positive_seconds
from fiper.evaluation.rowview import RowView, concat_rows
from fiper.evaluation.store_checks import RolloutError, check_onset_steps, check_store_rows, check_success_labels
from fiper.monitor.independence import embedding_digest
from fiper.scores.images import image_axes
from fiper.scores.observations import attr_n_action_steps, bookkeeping_keys, observed_keys
from fiper.storage import EpisodeStore

def _is_store(path: Path) -> bool:
    """A zarr group of either format: opening one of format 3 then names the format and the fix."""
    return path.is_dir() and ((path / ".zgroup").exists() or (path / "zarr.json").exists())


def expand_stores(spec: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """Store paths from a path, a glob, a directory of stores, or a list (or comma list) of those."""
    items = [spec] if isinstance(spec, (str, os.PathLike)) else list(spec)
    parts = [p.strip() for item in items for p in (str(item).split(",") if isinstance(item, str) else [str(item)]) if p.strip()]
    if not parts:
        raise RolloutError("no rollout stores given: pass rollouts=<store path, glob, directory or list>")
    found: list[Path] = []
    for part in parts:
        path = Path(part).expanduser()
        if any(c in part for c in "*?["):
            matches = sorted(Path(m) for m in glob.glob(str(path), recursive=True))
            matches = [m for m in matches if _is_store(m)]
            if not matches:
                raise RolloutError(f"the glob {part!r} matches no zarr store")
            found.extend(matches)
        elif _is_store(path):
            found.append(path)
        elif path.is_dir():
            inner = sorted(p for p in path.rglob("*.zarr") if _is_store(p))
            if not inner:
                raise RolloutError(f"{path} is neither a zarr store nor a directory containing *.zarr stores")
            found.extend(inner)
        else:
            where = "" if path.is_absolute() else f" (relative to the working directory {Path.cwd()})"
            raise RolloutError(f"no rollout store at {path}{where}; give the store's path, or record rollouts with the "
                               "control loop first (launch.stress)")
    unique = list(dict.fromkeys(p.resolve() for p in found))
    return unique


def recorded_task(attrs: dict[str, Any]) -> str | None:
    """The task a store's attrs name: 'task', else 'env' (a name, or a dict with name/id); None when they name none."""
    for key in ("task", "env"):
        value = attrs.get(key)
        if isinstance(value, str) and value:
            return value
        if isinstance(value, dict):
            for sub in ("name", "id", "task"):
                if isinstance(value.get(sub), str) and value[sub]:
                    return value[sub]
    return None


def task_name(attrs: dict[str, Any], path: Path) -> str:
    """The task a store belongs to: the one its attrs name, else the store name."""
    return recorded_task(attrs) or (path.name[:-5] if path.name.endswith(".zarr") else path.name)


def store_control_period(attrs: dict[str, Any], path: Path, override: float | None, notes: list[str]) -> float:
    """Seconds per env step of a store: ``override``, else its attrs ``control_period_s``, else NaN with a note (never
    guessed); an implausible value (fiper.control.period) is refused naming where it came from."""
    if override is not None:
        where, fix = "the configured control_period_s (control_period_s=...)", "correct the override"
        value = override
    else:
        where = f"{path}: attrs control_period_s"
        fix = ("correct the store's attr (EpisodeStore.open(path, mode='a').set_attrs(control_period_s=...)), or pass "
               "control_period_s=<seconds per env step> to override it")
        value = attrs.get("control_period_s")
    if value is None:
        notes.append(f"{path.name}: no control_period_s attr, so warnings in seconds are not reported; "
                     "pass control_period_s=<seconds per env step> to report them")
        return float("nan")
    try:
        return positive_seconds(value, where, fix)
    except ValueError as err:
        raise RolloutError(str(err)) from None


@dataclass
class RolloutSet:
    """All decisions and labels of one task's episodes (merged over its stores): embeddings and labels in
    memory, sample batches read from the stores when scored (in memory only when under 64 MiB)."""

    task: str
    stores: tuple[str, ...]
    store_index: np.ndarray  # (E,) which store each episode came from
    episode_index: np.ndarray  # (E,) the episode's index inside its store
    embeddings: np.ndarray | None  # (N, D); None when the stores record none
    samples: np.ndarray | RowView | None  # (N, B, H, A), stored dtype, lazy over rowview.IN_MEMORY_BYTES; None when not recorded
    decision_ends: np.ndarray  # (E,) cumulative
    env_step: np.ndarray  # (N,) env step of each decision within its episode
    success: np.ndarray  # (E,) bool
    failure_step: np.ndarray  # (E,) int, -1 none/unknown
    shift: np.ndarray  # (E,) str, 'none' in distribution
    severity: np.ndarray  # (E,) float
    seed: np.ndarray  # (E,) int
    failure_reason: np.ndarray  # (E,) str, '' none/unknown
    live_alarm_step: np.ndarray  # (E,) int, env step of the live monitor's first alarm; -1 none/not recorded
    live_alarm_decision: np.ndarray  # (E,) int, decision index of that alarm; -1 none/not recorded
    live_monitor: np.ndarray  # (E,) str, the monitor that ran live (store attrs stress_config.monitor_dir); '' none
    control_period_s: float  # seconds per env step; NaN when the store does not record it
    n_action_steps: int | None  # env steps per decision, from attrs (None if not recorded)
    notes: list[str] = field(default_factory=list)
    software: dict[str, dict[str, str]] = field(default_factory=dict)  # per store: attrs 'software' (package versions)
    observation_keys: tuple[str, ...] = ()  # per-step observation keys every store records (what obs_novelty reads)
    task_recorded: bool = True  # the task came from the store's attrs, not from its file name
    observations_unplaced: tuple[str, ...] = ()  # stores with observations but no decisions/env_step nor n_action_steps attr
    image_keys: tuple[str, ...] = ()  # observation keys holding a camera image per step (what reconstruction reads)

    @property
    def n_episodes(self) -> int:
        return int(self.decision_ends.shape[0])

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(np.concatenate([[0], self.decision_ends])).astype(np.int64)

    @property
    def ood(self) -> np.ndarray:
        return self.shift != "none"

    @property
    def failed(self) -> np.ndarray:
        return ~self.success

    @property
    def sample_shape(self) -> tuple[int, int, int] | None:
        return None if self.samples is None else tuple(int(s) for s in self.samples.shape[1:])

    @property
    def embedding_dim(self) -> int | None:
        return None if self.embeddings is None else int(self.embeddings.shape[1])

    @property
    def recorded(self) -> frozenset[str]:
        """The score inputs (``needs``) these episodes record: a method reading anything else cannot run on them."""
        placed = not self.observations_unplaced
        have = {"embedding": self.embeddings is not None, "samples": self.samples is not None,
                "observation": bool(self.observation_keys) and placed, "image": bool(self.image_keys) and placed}
        return frozenset(k for k, v in have.items() if v)

    @property
    def unreadable(self) -> dict[str, str]:
        """Inputs the stores record but cannot place at their decisions, each with why and the fix."""
        if not self.observations_unplaced:
            return {}
        why = (f"{', '.join(self.observations_unplaced)} record(s) no decisions/env_step and no n_action_steps attr, so which "
               "observation each decision saw is unknown: record decisions/env_step, or set the attr "
               "(EpisodeStore.open(path, mode='a').set_attrs(n_action_steps=<env steps per decision>))")
        return {"observation": why, **({"image": why} if self.image_keys else {})}


def recorded_monitor_dir(recorded: Any, store_path: Path) -> str:
    """The live monitor's directory as the store recorded it (``''``: none). A relative path was relative to the
    directory launch.stress ran in; when it does not lead to a monitor from here, the first folder above the store
    under which it does (the run's own folder, evaluated from elsewhere) gives it, so its rule and δ stay readable."""
    text = str(recorded or "")
    if not text or Path(text).is_absolute() or (Path(text) / "monitor.json").is_file():
        return text
    for parent in Path(store_path).resolve().parents:
        if (parent / text / "monitor.json").is_file():
            return str(parent / text)
    return text


def read_store(path: Path, control_period_s: float | None = None) -> RolloutSet:
    """One store as a RolloutSet. decisions/embedding and decisions/samples are read when recorded: the methods
    that read one a store lacks are left out of its task's evaluation (fiper.evaluation.runnable)."""
    store = EpisodeStore.open(path)
    if "success" not in store.meta_keys:
        raise RolloutError(f"{path} lacks meta/success (labels: {store.meta_keys}); evaluation needs a success label per episode: "
                           "record one bool per episode (meta={'success': ...} in EpisodeStore.append_episode, docs/rollout_format.md)")
    check_success_labels(store, path)  # before they are read as bool
    if store.n_episodes == 0:
        raise RolloutError(f"{path} holds no committed episodes")
    ends = store.decision_ends
    if not store.decision_keys and ends.shape[0] != store.n_episodes:
        raise RolloutError(
            f"{path} records no decisions (a demonstration store?); offline evaluation reads rollouts recorded by the control "
            "loop (launch.stress, launch.act), or give each episode decisions={'embedding': (N, D), 'samples': (N, B, H, A), "
            "'env_step': (N,)} in EpisodeStore.append_episode, with whichever of these your recorder has (docs/rollout_format.md)")
    if ends.shape[0] != store.n_episodes:
        raise RolloutError(f"{path} has decisions but no meta/decision_ends for its {store.n_episodes} episodes; write the "
                           "cumulative end decision of each episode there (EpisodeStore.append_episode does)")
    lengths = np.diff(np.concatenate([[0], ends]))
    if lengths.min() < 0:
        raise RolloutError(f"{path}: meta/decision_ends {ends[:5].tolist()} ... decreases at episode {int(np.argmax(lengths < 0))}; "
                           "it holds the cumulative end decision of each episode (np.cumsum of the decisions per episode)")
    if lengths.min() < 1:
        raise RolloutError(f"{path}: episode {int(np.argmin(lengths))} has no decisions; every evaluated episode needs at least one "
                           f"(meta/decision_ends, the cumulative end decision of each episode, reads {ends[:5].tolist()} ...)")
    attrs, n, e = store.attrs, store.n_decisions, store.n_episodes
    notes: list[str] = []
    n_action = attr_n_action_steps(attrs)
    if "env_step" in store.decision_keys:
        env_step = np.asarray(store.read_decisions("env_step"), dtype=np.int64)
    else:
        per = n_action or 1
        env_step = (np.arange(n) - np.repeat(ends - lengths, lengths)) * per
        notes.append(f"{path.name}: no decisions/env_step; assumed {per} env step(s) per decision")
    period = store_control_period(attrs, path, control_period_s, notes)
    if "failure_step" not in store.meta_keys and "success" in store.meta_keys and not np.asarray(store.meta("success")).all():
        notes.append(f"{path.name}: no meta/failure_step, so no failure has a known onset and alarms before onset and "
                     "warning times are not reported; record the env step of each failure's irrecoverable event (-1 if none)")

    check_onset_steps(store, path)
    skipped = bookkeeping_keys(store)
    if skipped:
        notes.append(f"{path.name}: data keys {skipped} are read as bookkeeping, not observations (obs_novelty leaves them "
                     "out); store an observation under another name to have it read")
    if "shift" not in store.meta_keys:
        notes.append(f"{path.name}: no meta/shift, so its {e} episode(s) count as in distribution ('none'); record each "
                     "episode's shift (meta={'shift': 'none' or the shift's name}) to evaluate detection under shift")

    def meta(key: str, default: Any, dtype: Any, needed: bool = True) -> np.ndarray:
        """meta/<key> as ``dtype``; ``default`` when absent, or (``needed`` False) when it holds no numbers, with a note."""
        if key not in store.meta_keys:  # dtype=str would cut a text default to its first character
            return np.full(e, default, dtype=np.asarray(default).dtype if dtype is str else dtype)
        values = store.meta(key)
        if dtype is str:  # zarr may hand back numpy's variable-width StringDType
            return np.array([str(v) for v in values.tolist()], dtype=str)
        try:
            return values.astype(dtype)
        except (ValueError, TypeError):
            if not needed:
                notes.append(f"{path.name}: meta/{key} holds {values.dtype} values ({values[:2].tolist()} ...), not numbers; "
                             f"read as {default} (not used by the evaluation)")
                return np.full(e, default, dtype=dtype)
            raise RolloutError(f"{path}: meta/{key} holds {values.dtype} values ({values[:3].tolist()} ...) that are not "
                               f"{np.dtype(dtype).name} numbers; store one number per episode (docs/rollout_format.md)") from None

    rollout_set = RolloutSet(
        task=task_name(attrs, path),
        stores=(str(path),),
        store_index=np.zeros(e, dtype=np.int64),
        episode_index=np.arange(e, dtype=np.int64),
        embeddings=np.asarray(store.read_decisions("embedding")) if "embedding" in store.decision_keys else None,
        samples=RowView([(store.decision_array("samples"), n)]) if "samples" in store.decision_keys else None,  # read when merged
        decision_ends=ends.astype(np.int64),
        env_step=env_step,
        success=meta("success", False, bool),
        failure_step=meta("failure_step", -1, np.int64),
        shift=meta("shift", "none", str),
        severity=meta("severity", 0.0, np.float64),
        seed=meta("seed", -1, np.int64, needed=False),
        failure_reason=meta("failure_reason", "", str),
        live_alarm_step=meta("first_alarm_step", -1, np.int64),
        live_alarm_decision=meta("first_alarm_decision", -1, np.int64),
        live_monitor=np.full(e, recorded_monitor_dir((attrs.get("stress_config") or {}).get("monitor_dir"), path)),
        control_period_s=float(period),
        n_action_steps=n_action,
        notes=notes,
        software={str(path): dict(attrs.get("software") or {})},
        observation_keys=tuple(observed_keys(store)),
        task_recorded=recorded_task(attrs) is not None,
        observations_unplaced=(path.name,) if observed_keys(store) and "env_step" not in store.decision_keys and not n_action else (),
        image_keys=tuple(k for k in observed_keys(store) if image_axes(store.data_array(k).shape[1:]) is not None),
    )
    check_store_rows(store, path, rollout_set)
    return rollout_set


def merge_rollouts(parts: Sequence[RolloutSet]) -> RolloutSet:
    """Concatenate RolloutSets of one task; shapes and control periods must agree."""
    first = parts[0]
    for other in parts[1:]:
        if other.embedding_dim != first.embedding_dim or other.sample_shape != first.sample_shape:
            raise RolloutError(
                f"task {first.task!r}: {other.stores[0]} records embeddings D={other.embedding_dim} and samples "
                f"(B, H, A)={other.sample_shape} but {first.stores[0]} records D={first.embedding_dim} and "
                f"{first.sample_shape} (None: not recorded); stores of one task must come from the same policy and batch "
                "size, recording the same decisions (give them different 'task' attrs to evaluate them separately)"
            )
        if not np.isclose(other.control_period_s, first.control_period_s, equal_nan=True):
            raise RolloutError(
                f"task {first.task!r}: {other.stores[0]} has control_period_s={other.control_period_s} but "
                f"{first.stores[0]} has {first.control_period_s}; pass control_period_s=... to override"
            )
    if len(parts) == 1:
        return dataclasses.replace(first, samples=None if first.samples is None else concat_rows([first.samples]))
    offsets = np.cumsum([0] + [int(p.decision_ends[-1]) for p in parts[:-1]])
    n_actions = {p.n_action_steps for p in parts} - {None}
    return RolloutSet(
        task=first.task,
        stores=tuple(s for p in parts for s in p.stores),
        store_index=np.concatenate([np.full(p.n_episodes, i, dtype=np.int64) for i, p in enumerate(parts)]),
        episode_index=np.concatenate([p.episode_index for p in parts]),
        embeddings=None if first.embeddings is None else np.concatenate([p.embeddings for p in parts]),
        samples=None if first.samples is None else concat_rows([p.samples for p in parts]),
        decision_ends=np.concatenate([p.decision_ends + off for p, off in zip(parts, offsets)]),
        env_step=np.concatenate([p.env_step for p in parts]),
        success=np.concatenate([p.success for p in parts]),
        failure_step=np.concatenate([p.failure_step for p in parts]),
        shift=np.concatenate([p.shift for p in parts]).astype(str),
        severity=np.concatenate([p.severity for p in parts]),
        seed=np.concatenate([p.seed for p in parts]),
        failure_reason=np.concatenate([p.failure_reason for p in parts]).astype(str),
        live_alarm_step=np.concatenate([p.live_alarm_step for p in parts]),
        live_alarm_decision=np.concatenate([p.live_alarm_decision for p in parts]),
        live_monitor=np.concatenate([p.live_monitor for p in parts]).astype(str),
        control_period_s=first.control_period_s,
        n_action_steps=n_actions.pop() if len(n_actions) == 1 else None,
        notes=[n for p in parts for n in p.notes] + software_notes({k: v for p in parts for k, v in p.software.items()}),
        software={k: v for p in parts for k, v in p.software.items()},
        observation_keys=tuple(k for k in first.observation_keys if all(k in p.observation_keys for p in parts)),
        observations_unplaced=tuple(n for p in parts for n in p.observations_unplaced),
        image_keys=tuple(k for k in first.image_keys if all(k in p.image_keys for p in parts)),
    )


def software_notes(software: Mapping[str, Mapping[str, str]], packages: Sequence[str] = ("mujoco", "torch")) -> list[str]:
    """A note per package recorded at different versions by a task's stores: the episodes may then differ in more than
    the shifts (a MuJoCo release that changed contacts, a torch release that changed sampling)."""
    notes = []
    for package in packages:
        by_version: dict[str, list[str]] = {}
        for path, versions in software.items():
            if package in versions:
                by_version.setdefault(versions[package], []).append(Path(path).name)
        if len(by_version) > 1:
            listed = "; ".join(f"{v} ({', '.join(names)})" for v, names in sorted(by_version.items()))
            notes.append(f"the stores were recorded with different {package} releases: {listed}; their episodes may differ by "
                         "more than their shifts: record them again with one release")
    return notes


def load_rollouts(spec: Any, *, control_period_s: float | None = None, progress: bool = False) -> dict[str, RolloutSet]:
    """Every store of ``spec`` read and merged by task, tasks in order of first appearance."""
    from tqdm.auto import tqdm

    by_task: dict[str, list[RolloutSet]] = {}
    for path in tqdm(expand_stores(spec), desc="load stores", disable=not progress):
        part = read_store(path, control_period_s)
        by_task.setdefault(part.task, []).append(part)
    parts = [p for task in by_task.values() for p in task]
    named = sorted({p.task for p in parts if p.task_recorded})
    unnamed = [p for p in parts if not p.task_recorded]
    if named and unnamed:
        raise RolloutError(
            f"{unnamed[0].stores[0]} has no 'task' attr, so it would be evaluated as a task of its own ({unnamed[0].task!r}), "
            f"apart from the stores of task(s) {named}; set its task (EpisodeStore.open(path, mode='a').set_attrs("
            f"task={named[0]!r})) to evaluate them together, or give every store a task attr to evaluate them apart"
        )
    tasks = {task: merge_rollouts(parts) for task, parts in by_task.items()}
    for rollouts in tasks.values():
        rollouts.notes.extend(repeated_episode_notes(rollouts))
    return tasks


def repeated_episode_notes(rollouts: RolloutSet) -> list[str]:
    """A note when episodes repeat another's embeddings exactly (the same rollouts given twice, in two stores or one):
    a repeat can land in fit or calibration and its twin in test, which flatters the test metrics."""
    if rollouts.embeddings is None:
        return []
    starts = np.concatenate([[0], rollouts.decision_ends[:-1]])
    seen: dict[str, int] = {}
    repeats = []
    for i, (lo, hi) in enumerate(zip(starts, rollouts.decision_ends)):
        key = embedding_digest(rollouts.embeddings[lo:hi])
        if key in seen:
            repeats.append((seen[key], i))
        else:
            seen[key] = i
    if not repeats:
        return []
    (a, b), name = repeats[0], lambda i: f"episode {int(rollouts.episode_index[i])} of {Path(rollouts.stores[rollouts.store_index[i]]).name}"
    return [f"{len(repeats)} episode(s) repeat another episode's decisions exactly (first: {name(b)} = {name(a)}): the same "
            "rollouts given twice can sit in fit or calibration and in test, which flatters the test metrics; give each "
            "rollout once"]
