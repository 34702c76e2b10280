"""Decisions (embedding, sample batch) of a policy replayed on recorded observations.

Demonstration stores carry observations but no decisions; fitting score models on them needs
the policy's embedding and sample batch at every decision point (every ``n_action_steps`` env
steps from each episode start), computed in batches through the GenerativePolicy protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from fiper.protocol import output_problem
from fiper.storage import EpisodeStore, TrainingWindows


@dataclass
class DecisionBatch:
    """Per-decision arrays of E episodes: embeddings (N, D), samples (N, B, H, A), ends (E,)."""

    embeddings: np.ndarray
    samples: np.ndarray
    decision_ends: np.ndarray
    env_steps: np.ndarray  # (N,) step within its episode


def decision_steps(episode_ends: np.ndarray, every: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Global step index, within-episode step, and per-episode decision ends for re-planning every ``every`` steps."""
    starts = np.concatenate([[0], episode_ends[:-1]])
    lengths = episode_ends - starts
    counts = -(-lengths // every)
    local = np.concatenate([np.arange(c) * every for c in counts]) if len(counts) else np.zeros(0, np.int64)
    glob = local + np.repeat(starts, counts)
    return glob.astype(np.int64), local.astype(np.int64), np.cumsum(counts).astype(np.int64)


def _raise_if_malformed(value: Any, method: str, layout: str, expected: tuple[int, ...], device: Any) -> None:
    problem = output_problem(value, method, layout, expected, device)
    if problem:
        raise ValueError(f"replaying the store's decisions: {problem}")


@torch.no_grad()
def replay_decisions(
    policy: Any,
    store: EpisodeStore,
    num_samples: int,
    *,
    obs_keys: list[str] | None = None,
    episodes: np.ndarray | None = None,
    batch_size: int = 64,
    seed: int = 0,
    progress: bool = True,
) -> DecisionBatch:
    """Encode and sample the policy at every decision point of (some) episodes of ``store``."""
    obs_keys = list(obs_keys or policy.obs_shapes)
    windows = TrainingWindows(store, obs_keys, policy.n_obs_steps, 1, episodes=episodes)
    sub_ends = np.cumsum(store.episode_lengths[windows.episodes])
    idx, local, dec_ends = decision_steps(sub_ends, int(policy.n_action_steps))
    generator = torch.Generator(device=policy.device).manual_seed(seed)
    embeddings, samples = [], []
    for start in tqdm(range(0, len(idx), batch_size), desc="replaying decisions", disable=not progress, leave=False):
        obs, _ = windows.batch(idx[start : start + batch_size])
        obs_t = {k: torch.as_tensor(v, device=policy.device) for k, v in obs.items()}
        n = len(idx[start : start + batch_size])
        z = policy.encode(obs_t)
        _raise_if_malformed(z, "encode", "(N, D)", (n, policy.embedding_dim), policy.device)
        embeddings.append(z.float().cpu().numpy())
        batch = policy.sample(z, num_samples, generator=generator)
        _raise_if_malformed(batch, "sample", "(N, B, H, A)", (n, num_samples, policy.horizon, policy.action_dim), policy.device)
        samples.append(batch.float().cpu().numpy())
    return DecisionBatch(np.concatenate(embeddings), np.concatenate(samples), dec_ends, local)
