"""A 2-D bimodal toy demonstration set: pass an obstacle over the top or underneath, 50/50.

The agent starts left of an obstacle point at the origin, approaches it along the x axis, then
goes around it on a half circle, over the top (y > 0) or underneath (y < 0), to the goal on the
right. Along the approach both modes are equally likely, so a policy that averages them (a
regressor) would drive straight into the obstacle, while a good generative policy samples both
arcs and nothing in between::

                 . - ~ - .
     S -- -- -- (    O    ) G          S start, O obstacle, G goal
                 ' - ~ - '

    data/agent_pos  (T, 2)  position at step k
    data/action     (T, 2)  position at step k + 1 (a position target)
    meta/mode       (E,)    +1 over the top, -1 underneath
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from fiper.storage import EpisodeStore
from policies.config import PolicyConfig, TrainConfig

OBS_KEY = "agent_pos"
# A tiny policy that learns both modes of the default task in ~800 steps (10-20 s on one CPU core).
TOY_POLICY = dict(horizon=8, n_action_steps=4, n_obs_steps=2, down_dims=[16, 32], embed_dim=32, encoder_hidden=64,
                  mlp_hidden=128, mlp_layers=2, time_embed_dim=32)
TOY_SAMPLER_STEPS = {"diffusion": 16, "flow": 10}
TOY_TRAIN = dict(batch_size=128, lr=1e-2, warmup_steps=20, ema_decay=0.95, val_every=100, checkpoint_every=10**6,
                 cpu_threads=1)


@dataclass(frozen=True)
class BimodalTask:
    """Geometry of the toy task; every step covers the same distance (pi * radius / arc_steps).

    The default (2 approach + 8 arc steps) makes 3 of every 10 training windows ambiguous, enough
    for a tiny policy to learn both modes in a few hundred steps (docs/policies.md).
    """

    approach_steps: int = 2
    arc_steps: int = 8
    radius: float = 1.0

    def __post_init__(self) -> None:
        if self.approach_steps < 0 or self.arc_steps < 2 or not self.radius > 0:
            raise ValueError(f"need approach_steps >= 0, arc_steps >= 2, radius > 0; got {self}")

    @property
    def episode_len(self) -> int:
        return self.approach_steps + self.arc_steps

    @property
    def step_len(self) -> float:
        return np.pi * self.radius / self.arc_steps

    @property
    def start(self) -> np.ndarray:
        return np.array([-self.radius - self.approach_steps * self.step_len, 0.0])

    def path(self, modes: np.ndarray, radii: np.ndarray | None = None) -> np.ndarray:
        """Noise-free positions (E, T+1, 2) for modes (E,) of +1 / -1 and optional per-episode radii."""
        modes = np.asarray(modes, dtype=np.float64)
        radii = np.full(modes.shape, self.radius) if radii is None else np.asarray(radii, dtype=np.float64)
        k = np.arange(self.episode_len + 1)
        back = np.clip(self.approach_steps - k, 0, None) * self.step_len  # distance still to approach
        theta = np.pi * (1.0 - np.clip(k - self.approach_steps, 0, None) / self.arc_steps)
        x = np.cos(theta)[None] * radii[:, None] - back[None]
        y = np.sin(theta)[None] * radii[:, None] * modes[:, None]
        return np.stack([x, y], axis=-1)

    def start_obs(self, n_obs_steps: int, n: int = 1) -> np.ndarray:
        """The start state as an observation history (n, n_obs_steps, 2), padded like TrainingWindows."""
        return np.broadcast_to(self.start.astype(np.float32), (n, n_obs_steps, 2)).copy()

    def reference_chunks(self, horizon: int) -> np.ndarray:
        """The noise-free action chunks from the start state, (2, H, 2): over the top first."""
        return self.path(np.array([1.0, -1.0]))[:, 1 : horizon + 1]

    def mode_fractions(self, chunks: np.ndarray, tol: float = 0.2) -> dict[str, float]:
        """Fractions of chunks (B, H, 2) sampled at the start state that follow the upper arc, the
        lower arc (mean point-wise distance to the reference below ``tol``), or end in the empty
        middle (last point less than half as far from y = 0 as the arcs' last point).
        """
        chunks = np.asarray(chunks, dtype=np.float64)
        refs = self.reference_chunks(chunks.shape[1])
        dist = np.linalg.norm(chunks[None] - refs[:, None], axis=-1).mean(-1)  # (2, B)
        middle = np.abs(chunks[:, -1, 1]) < 0.5 * abs(refs[0, -1, 1])
        return {"up": float((dist[0] < tol).mean()), "down": float((dist[1] < tol).mean()), "middle": float(middle.mean())}


def bimodal_arrays(task: BimodalTask, n_episodes: int, *, seed: int = 0, radius_jitter: float = 0.05,
                   start_jitter: float = 0.02, step_noise: float = 0.005) -> tuple[np.ndarray, np.ndarray]:
    """Positions (E, T+1, 2) of ``n_episodes`` noisy demonstrations and their modes (E,), vectorised."""
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be >= 1, got {n_episodes}")
    rng = np.random.default_rng(seed)
    modes = np.where(rng.random(n_episodes) < 0.5, 1.0, -1.0)
    radii = task.radius * (1.0 + rng.uniform(-radius_jitter, radius_jitter, n_episodes))
    path = task.path(modes, radii) + rng.normal(0, start_jitter, (n_episodes, 1, 2))  # whole-episode offset
    path[:, 1:] += rng.normal(0, step_noise, path[:, 1:].shape)
    return path, modes


def make_bimodal_demos(path: str | os.PathLike, n_episodes: int = 100, task: BimodalTask | None = None, *,
                       seed: int = 0, overwrite: bool = False) -> EpisodeStore:
    """Write the toy demonstrations as an EpisodeStore at ``path`` and return it (open for appending)."""
    task = task or BimodalTask()
    positions, modes = bimodal_arrays(task, n_episodes, seed=seed)
    attrs = {"source": "policies.toy_data.make_bimodal_demos", "approach_steps": task.approach_steps,
             "arc_steps": task.arc_steps, "radius": task.radius, "seed": seed}
    store = EpisodeStore.create(path, overwrite=overwrite, attrs=attrs)
    for pos, mode in zip(positions.astype(np.float32), modes):
        store.append_episode({OBS_KEY: pos[:-1], "action": pos[1:]}, meta={"mode": int(mode)})
    return store


def toy_policy_config(kind: str = "diffusion", denoiser: str = "mlp", **overrides) -> PolicyConfig:
    """The tiny policy configuration validated on the toy task (see docs/policies.md)."""
    fields = {**TOY_POLICY, "num_inference_steps": TOY_SAMPLER_STEPS.get(kind, 10), **overrides}
    return PolicyConfig(kind=kind, denoiser=denoiser, **fields)


def toy_train_config(policy: PolicyConfig, steps: int = 800, **overrides) -> TrainConfig:
    """Training settings that make ``toy_policy_config`` sample both arcs and almost never the middle."""
    return TrainConfig(policy=policy, steps=steps, **{**TOY_TRAIN, **overrides})
