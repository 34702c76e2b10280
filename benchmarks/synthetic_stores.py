"""Synthetic labelled rollout stores for exercising the offline evaluation (tests, benchmarks, doc examples).

Embeddings live near a random low-dimensional manifold; each decision's B sampled chunks sit in
two sharp modes (a confident multimodal policy). Benign shifts (OOD successes) offset the
embedding but keep the samples sharp. Failures start drifting off the manifold at an onset
decision and their samples turn diffuse, so RND-OE sees both shifts and failures while ACE sees
only failures -- the situation FIPER's AND rule is designed for.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr

from fiper.storage import EpisodeStore, StoreError
from fiper.storage.layout import create_time_array


@dataclass(frozen=True)
class SyntheticTask:
    """Shapes and effect sizes of a synthetic task (the structure is fixed by ``task_seed``)."""

    name: str = "synthetic"
    embedding_dim: int = 8
    num_samples: int = 8  # B
    horizon: int = 4  # H
    action_dim: int = 2  # A
    n_action_steps: int = 2
    min_decisions: int = 16
    max_decisions: int = 24
    ood_shift: float = 1.5  # embedding offset of benign shifts (in noise units)
    drift: float = 0.35  # embedding drift per decision after a failure's onset
    diffuse: float = 0.5  # sample spread a failing policy reaches
    lag: int = 6  # decisions from the onset of the drift to the irrecoverable event (failure_step)
    fail_decisions: tuple[int, int] | None = None  # length range of failures (None: min/max_decisions), e.g. long timeouts
    task_seed: int = 0
    control_period_s: float | None = 0.05  # seconds per env step (store attrs); None records none

    def structure(self):
        g = np.random.default_rng(self.task_seed)
        basis = g.normal(size=(4, self.embedding_dim))
        shift_dir = g.normal(size=self.embedding_dim)
        fail_dir = g.normal(size=self.embedding_dim)
        act_map = g.normal(size=(self.embedding_dim, self.horizon * self.action_dim)) / np.sqrt(self.embedding_dim)
        return basis, shift_dir / np.linalg.norm(shift_dir), fail_dir / np.linalg.norm(fail_dir), act_map


def synthetic_episode(task: SyntheticTask, rng: np.random.Generator, *, success: bool, ood: bool, n_decisions: int | None = None) -> dict:
    """One episode's decisions and labels (failure onset in env steps, -1 for successes).

    ``n_decisions`` fixes the length (default: uniform in [min_decisions, max_decisions], for
    failures in ``task.fail_decisions`` when set).
    """
    basis, shift_dir, fail_dir, act_map = task.structure()
    lo, hi = task.fail_decisions if not success and task.fail_decisions is not None else (task.min_decisions, task.max_decisions)
    n = int(rng.integers(lo, hi + 1)) if n_decisions is None else int(n_decisions)
    b, h, a = task.num_samples, task.horizon, task.action_dim
    t = np.arange(n)[:, None]
    latent = np.concatenate([np.sin(t / 5.0 + rng.uniform(0, 6)), np.cos(t / 7.0), rng.normal(0, 0.3, (n, 2))], axis=1)
    emb = latent @ basis + 0.1 * rng.normal(size=(n, task.embedding_dim))
    spread = np.full((n, 1, 1, 1), 0.01)
    onset = -1
    if ood:
        emb += task.ood_shift * shift_dir
    if not success:
        onset = int(rng.integers(int(0.3 * n), int(0.6 * n) + 1))
        after = np.clip(t - onset + 1, 0, None)
        emb += task.drift * after * fail_dir
        spread = (0.01 + np.minimum(after / 4.0, 1.0) * task.diffuse)[:, :, None, None]
    mean = (emb @ act_map).reshape(n, 1, h, a)
    modes = np.where(rng.random((n, b, 1, 1)) < 0.5, -0.5, 0.5) * np.array([1.0] + [0.0] * (a - 1))
    samples = mean + modes + spread * rng.normal(size=(n, b, h, a))
    return {
        "embedding": emb.astype(np.float32),
        "samples": samples.astype(np.float16),
        "env_step": (np.arange(n) * task.n_action_steps).astype(np.int64),
        "failure_step": min(onset + task.lag, n - 1) * task.n_action_steps if onset >= 0 else -1,
    }


def write_episodes(path: str | os.PathLike, episodes: Sequence[tuple[Mapping, Mapping, Mapping]], *,
                   attrs: Mapping | None = None, overwrite: bool = False) -> EpisodeStore:
    """Write many (data, decisions, meta) episodes in the store layout of docs/rollout_format.md at once.

    Equivalent to ``EpisodeStore.append_episode`` per episode (same arrays, chunking and
    compression, ``meta/episode_ends`` written last) but each array is written once, which is
    what makes stores of thousands of synthetic episodes quick to build.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise StoreError(f"{path} already exists; pass overwrite=True to replace it")
    if not episodes:
        raise StoreError("write_episodes needs at least one episode")
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    for group in ("data", "decisions", "meta"):
        root.require_group(group)
    if attrs:
        root.attrs.update(dict(attrs))
    steps = np.cumsum([len(next(iter(d.values()))) for d, _, _ in episodes]).astype(np.int64)
    decisions = np.cumsum([len(next(iter(x.values()))) for _, x, _ in episodes]).astype(np.int64)
    columns = {
        "data": {k: np.concatenate([np.asarray(d[k]) for d, _, _ in episodes]) for k in episodes[0][0]},
        "decisions": {k: np.concatenate([np.asarray(x[k]) for _, x, _ in episodes]) for k in episodes[0][1]},
        "meta": {**{k: np.asarray([m[k] for _, _, m in episodes]) for k in episodes[0][2]}, "decision_ends": decisions},
    }
    columns["meta"]["episode_ends"] = steps  # the commit record: written last
    for group, arrays in columns.items():
        for key, value in arrays.items():
            if value.dtype.kind == "O":
                value = value.astype(str)
            parent = root[group]
            if "/" in key:
                sub, key = key.rsplit("/", 1)
                parent = parent.require_group(sub)
            arr = create_time_array(parent, key, value)
            arr.resize((value.shape[0], *arr.shape[1:]))
            arr[:] = value
    return EpisodeStore.open(path)


def write_synthetic_store(
    path: str | os.PathLike,
    task: SyntheticTask | None = None,
    *,
    n_success_id: int = 60,
    n_success_ood: int = 15,
    n_fail_id: int = 20,
    n_fail_ood: int = 20,
    seed: int = 0,
    live_scores: bool = False,
    overwrite: bool = False,
    replace: dict[int, dict] | None = None,
    failure_reasons: Sequence[str] | None = None,
    decision_keys: Sequence[str] = ("embedding", "samples", "env_step"),
) -> EpisodeStore:
    """Write a labelled rollout store; episodes are shuffled kinds. ``replace`` maps episode index
    -> decisions to write instead (same length), for tests that alter chosen episodes only.

    ``failure_reasons`` labels the failures in store order, cycling (meta/failure_reason, '' for
    successes); a 'timeout' failure's failure_step is then its last env step, as envs/labels.py sets it.
    Without it the store records no failure_reason. ``decision_keys`` are the decisions recorded (e.g. no
    'samples', as a recorder that keeps the embedding alone).
    """
    task = task or SyntheticTask()
    rng, live, observed = np.random.default_rng(seed), np.random.default_rng([seed, 1]), np.random.default_rng([seed, 2])
    kinds = [(True, False)] * n_success_id + [(True, True)] * n_success_ood + [(False, False)] * n_fail_id + [(False, True)] * n_fail_ood
    order = rng.permutation(len(kinds))
    attrs = {"task": task.name, "n_action_steps": task.n_action_steps,
             **({"control_period_s": task.control_period_s} if task.control_period_s is not None else {}),
             "source": "benchmarks.synthetic_stores"}
    episodes, n_failed = [], 0
    for i, k in enumerate(order):
        success, ood = kinds[k]
        ep = synthetic_episode(task, rng, success=success, ood=ood)
        if replace and i in replace:
            ep = {**ep, **replace[i]}
        decisions = {k: ep[k] for k in decision_keys}
        if live_scores:  # what a live monitor recorded; drawn from their own stream so episodes stay identical
            decisions["score/rnd_oe"] = live.random(len(ep["env_step"]))
            decisions["score/ace"] = live.random(len(ep["env_step"]))
        executed = ep["samples"][:, 0, : task.n_action_steps].astype(np.float32).reshape(-1, task.action_dim)
        meta = {"success": success, "failure_step": ep["failure_step"], "shift": "camera" if ood else "none",
                "severity": 0.5 if ood else 0.0, "seed": int(seed * 100000 + i)}
        if failure_reasons:
            reason = "" if success else str(failure_reasons[n_failed % len(failure_reasons)])
            n_failed += int(not success)
            if reason == "timeout":
                meta["failure_step"] = len(executed) - 1
            meta["failure_reason"] = reason
        # the raw observation per env step (what obs_novelty reads), from its own stream: episodes stay identical
        state = (observed.normal(size=(len(executed), 4)) + (1.5 if ood else 0.0)).astype(np.float32)
        episodes.append(({"action": executed, "state": state}, decisions, meta))
    return write_episodes(path, episodes, attrs=attrs, overwrite=overwrite)
