"""Train a policy on demonstrations in an EpisodeStore: AdamW, warmup + cosine LR, EMA, validation, resume.

Output directory after (and during) a run::

    config.json          policy kind, PolicyConfig, shapes, info.train_step, info.data (the store)   <- load_policy(out_dir)
    model.safetensors    model + EMA + normalizer tensors
    train_state.pt       optimizer + LR-scheduler state and step (tensors and numbers only)
    train_config.json    the TrainConfig of the run
    metrics.json         train / validation loss history
    loss_curve.png       the same history plotted (policies/curves.py)
    tensorboard/         TensorBoard event files (loss/train, loss/val), written while training runs

The first five are written together at every checkpoint (fiper.atomic.commit_files), so a run killed at
any moment resumes from its last complete checkpoint. Batches are drawn by a generator seeded with
(seed, step) (``sampling='chunked'``: from the epoch order seeded with (seed, epoch)), so a resumed run
draws exactly the batches and noise the uninterrupted run would have drawn. The next batch is read in a
background thread while a step runs.
"""

from __future__ import annotations

import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from fiper.atomic import commit_files, finish_commit
from fiper.scores.observations import bookkeeping_keys, observed_keys
from fiper.storage import EpisodeStore, TrainingWindows
from policies.base import ChunkPolicy
from policies.checkpoint import policy_file_writers, read_policy_files
from policies.config import TrainConfig
from policies.curves import CURVE_FILE, LossLog, write_loss_curve
from policies.encoders import large_image_note
from policies.factory import build_policy
from policies.normalizer import check_obs_layout
from policies.resume import check_failed_demos, check_same_data, data_record, policy_changes

TRAIN_STATE_FILE = "train_state.pt"
TRAIN_CONFIG_FILE = "train_config.json"
METRICS_FILE = "metrics.json"
RUN_ONLY = ("device", "cpu_threads", "progress")  # settings that do not change what a run computes


@dataclass
class TrainResult:
    """The trained policy (EMA weights sample) and its loss history [(step, loss), ...]."""

    policy: ChunkPolicy
    step: int
    out_dir: Path
    train_loss: list[tuple[int, float]] = field(default_factory=list)
    val_loss: list[tuple[int, float]] = field(default_factory=list)


def has_checkpoint(out_dir: str | os.PathLike) -> bool:
    """Whether ``out_dir`` holds a training checkpoint to resume, once a save a killed run left half done is
    completed or undone."""
    out_dir = Path(out_dir)
    if out_dir.is_dir():
        finish_commit(out_dir)
    return (out_dir / TRAIN_STATE_FILE).exists()


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when available, else cpu; asking for cuda without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} but CUDA is not available on this machine; use device=cpu or device=auto")
    return torch.device(name)


def split_episodes(n_episodes: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Episode-level split: (train, val) episode indices; val is empty for a single episode."""
    order = np.random.default_rng(seed).permutation(n_episodes)
    n_val = min(n_episodes - 1, int(round(val_fraction * n_episodes))) if val_fraction > 0 else 0
    if val_fraction > 0 and n_episodes > 1:
        n_val = max(1, n_val)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warmup then cosine decay to zero."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _to_device(obs: dict[str, np.ndarray], action: np.ndarray, device: torch.device) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    return {k: torch.from_numpy(np.ascontiguousarray(v)).to(device) for k, v in obs.items()}, torch.from_numpy(action).to(device)


def _step_generator(device: torch.device, seed: int, step: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed * 1_000_003 + step)


def _store_shapes(store: EpisodeStore, obs_keys: list[str]) -> tuple[dict[str, tuple[int, ...]], int]:
    shapes = {k: tuple(store.data_array(k).shape[1:]) for k in obs_keys}
    for key in obs_keys:
        check_obs_layout(key, shapes[key], store.data_array(key).dtype)
    action = store.data_array("action")
    if action.ndim != 2:
        raise ValueError(f"{store.path}/data/action has shape {action.shape}; expected (T, A)")
    return shapes, int(action.shape[1])


def default_obs_keys(store: EpisodeStore) -> list[str]:
    """The store's observation keys: every data key but the action and what recorders log beside the observation
    (reward, done, success, wall_time, lerobot's bookkeeping, ...), which an env does not emit at run time."""
    left_out = bookkeeping_keys(store)
    if left_out:
        print(f"[train] not read as observations: {left_out} (recorder keys; name them in policy.obs_keys to read them)",
              flush=True)
    return observed_keys(store)


def demo_episodes(store: EpisodeStore, failed_demos: str) -> np.ndarray:
    """Episodes to train on: with failed_demos='skip' those whose meta/success is true (all when the store has no
    success label), with 'keep' all of them; a policy imitates every episode it is trained on."""
    episodes = np.arange(store.n_episodes)
    if failed_demos == "keep" or "success" not in store.meta_keys:
        return episodes
    success = np.asarray(store.meta("success")).astype(bool)
    if not success.any():
        raise ValueError(f"{store.path}: all {store.n_episodes} episodes have meta/success false, so none is left to imitate; "
                         "train on them anyway with train.failed_demos=keep, or label the successful ones")
    if not success.all():
        print(f"[train] leaving out {int((~success).sum())} of {store.n_episodes} episodes whose meta/success is false "
              "(train.failed_demos=keep trains on them)", flush=True)
    return episodes[success]


def _fit_normalizer(policy: ChunkPolicy, store: EpisodeStore, episodes: np.ndarray) -> None:
    """Min/max statistics over the training episodes (images need none)."""
    rows = np.concatenate([np.arange(store.episode_slice(int(e)).start, store.episode_slice(int(e)).stop) for e in episodes])
    keys = policy.normalizer.lowdim_keys
    policy.fit_normalizer({k: store.read_data(k)[rows] for k in keys}, store.read_data("action")[rows])


class _Trainer:
    """One training run; kept as a class so the loop, validation and checkpointing read separately."""

    def __init__(self, store_path: str | os.PathLike, config: TrainConfig, out_dir: str | os.PathLike, resume: bool,
                 stop_at: int | None = None):
        self.config, self.out_dir, self.stop_at = config, Path(out_dir), stop_at
        self.device = resolve_device(config.device)
        store = EpisodeStore.open(store_path)
        pc = config.policy
        obs_keys = list(pc.obs_keys) if pc.obs_keys else default_obs_keys(store)
        if not obs_keys:
            raise ValueError(f"{store.path} holds no observation key in data/ (keys: {store.data_keys}); a policy needs one")
        shapes, action_dim = _store_shapes(store, obs_keys)
        episodes = demo_episodes(store, config.failed_demos)
        train_idx, val_idx = split_episodes(len(episodes), config.val_fraction, config.seed)
        train_eps, val_eps = episodes[train_idx], episodes[val_idx]
        sizes = {k: getattr(config, k) for k in ("memory_limit", "cache_bytes") if getattr(config, k) is not None}
        self.windows = TrainingWindows(store, obs_keys, pc.n_obs_steps, pc.horizon, episodes=train_eps, **sizes)
        self.val_windows = (TrainingWindows(store, obs_keys, pc.n_obs_steps, pc.horizon, episodes=val_eps, **sizes)
                            if len(val_eps) else None)
        self.step, self.train_loss, self.val_loss = 0, [], []
        self._orders: dict[int, np.ndarray] = {}
        self.data = data_record(store)
        has_ckpt = has_checkpoint(self.out_dir)
        if has_ckpt and not resume:
            raise FileExistsError(f"{self.out_dir} already holds a training checkpoint; pass resume=True (on the command line: resume=true) to continue it, or choose another output directory")
        if has_ckpt:
            self._check_resume(store, pc)  # before anything in out_dir is written
        torch.manual_seed(config.seed)
        self.policy = build_policy(pc, shapes, action_dim)
        _fit_normalizer(self.policy, store, train_eps)
        self.policy.to(self.device).train()
        self.optimizer = torch.optim.AdamW(self.policy.model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                                           betas=(0.95, 0.999), foreach=True)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: lr_factor(s, config.warmup_steps, config.steps))
        if has_ckpt:
            self._resume()

    def _check_resume(self, store: EpisodeStore, pc) -> None:
        """Refuse a resume on other demonstrations or another network; name the sampling settings that change."""
        meta_file = self.out_dir / "config.json"
        info = json.loads(meta_file.read_text()).get("info", {}) if meta_file.exists() else {}
        check_same_data(info.get("data"), store, self.out_dir)
        saved = json.loads((self.out_dir / TRAIN_CONFIG_FILE).read_text())
        check_failed_demos(saved, store, self.config.failed_demos, self.out_dir)
        sampling = policy_changes(saved["policy"], pc.to_dict(), self.out_dir)
        if sampling:
            print(f"[train] resuming with changed sampling settings {sampling} (saved, given): training is unchanged and "
                  "the checkpoint records the given ones", flush=True)

    def _resume(self) -> None:
        saved = json.loads((self.out_dir / TRAIN_CONFIG_FILE).read_text())
        changed = {k: [saved[k], v] for k, v in self.config.to_dict().items()
                   if k in saved and saved[k] != v and k not in (*RUN_ONLY, "policy")}
        if changed:
            print(f"[train] resuming with changed settings {changed} (saved, given): the rest of the run uses the given ones; "
                  "the LR schedule follows the given steps, so extending a finished run raises its decayed learning rate again",
                  flush=True)
        meta, weights = read_policy_files(self.out_dir, self.device)
        # CPU first: optimizer.load_state_dict moves the moments to the parameters' device but keeps
        # AdamW's `step` counters where they were loaded; on the GPU they would cost one .item() sync
        # per parameter tensor per step, unlike the CPU-hosted counters of an uninterrupted run.
        state = torch.load(self.out_dir / TRAIN_STATE_FILE, map_location="cpu", weights_only=True)
        weights_step = meta.get("info", {}).get("train_step")
        if weights_step != state["step"]:
            raise ValueError(f"{self.out_dir}: weights are at step {weights_step} but the optimizer state at {state['step']} "
                             f"(a run stopped while saving); delete {TRAIN_STATE_FILE} and train afresh into a new directory")
        self.policy.load_state_dict(weights)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])
        metrics = json.loads((self.out_dir / METRICS_FILE).read_text())
        self.train_loss = [tuple(x) for x in metrics["train_loss"]]
        self.val_loss = [tuple(x) for x in metrics["val_loss"]]

    def _batch(self, windows: TrainingWindows, rng: np.random.Generator) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        obs, action = windows.batch(rng.integers(0, len(windows), self.config.batch_size))
        return _to_device(obs, action, self.device)

    def _train_indices(self, step: int) -> np.ndarray:
        """Windows of step ``step``: uniform with replacement, or positions step*B .. of the epoch orders."""
        c, n = self.config, len(self.windows)
        if c.sampling == "uniform":
            return np.random.default_rng([c.seed, step]).integers(0, n, c.batch_size)
        pos = np.arange(step * c.batch_size, (step + 1) * c.batch_size)
        return np.concatenate([self._epoch_order(e)[pos[pos // n == e] % n] for e in np.unique(pos // n)])

    def _epoch_order(self, epoch: int) -> np.ndarray:
        if epoch not in self._orders:
            self._orders = {e: o for e, o in self._orders.items() if e == epoch - 1}
            self._orders[epoch] = self.windows.epoch_order(np.random.default_rng([self.config.seed, 11, epoch]))
        return self._orders[epoch]

    @torch.no_grad()
    def validate(self) -> float:
        """Mean EMA-model loss over fixed validation batches and noise (comparable across steps)."""
        if self.val_windows is None:
            return float("nan")
        rng = np.random.default_rng([self.config.seed, 7])
        gen = _step_generator(self.device, self.config.seed, -1)
        losses = [self.policy.compute_loss(*self._batch(self.val_windows, rng), generator=gen, use_ema=True)
                  for _ in range(self.config.val_batches)]
        return float(torch.stack(losses).mean())

    def save(self) -> None:
        """Write the checkpoint's files together (fiper.atomic.commit_files): a kill at any moment leaves this step's
        checkpoint or the previous one, never a mix; config.json, the file load_policy reads, changes last."""
        state = {"step": self.step, "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}
        meta = self.policy.checkpoint_meta({"train_step": self.step, "data": self.data})
        commit_files(self.out_dir, {
            TRAIN_CONFIG_FILE: lambda path: path.write_text(json.dumps(self.config.to_dict(), indent=2)),
            TRAIN_STATE_FILE: lambda path: torch.save(state, path),
            METRICS_FILE: lambda path: path.write_text(json.dumps({"train_loss": self.train_loss, "val_loss": self.val_loss})),
            **policy_file_writers(meta, self.policy.state_dict())})
        write_loss_curve(self.out_dir / CURVE_FILE, self.train_loss, self.val_loss,
                         title=f"{self.config.policy.kind}/{self.config.policy.denoiser}, step {self.step}")

    def run(self) -> TrainResult:
        c = self.config
        note = large_image_note(self.policy.obs_shapes, c.policy.image_downsample) if self.device.type == "cpu" else None
        if note and self.step < c.steps:
            print(f"[train] {note}", flush=True)
        if self.windows.on_disk and c.sampling == "uniform" and self.step < c.steps:
            size = sum(self.windows.column_bytes(k) for k in self.windows.on_disk) / 2**30
            print(f"[train] {self.windows.on_disk} ({size:.1f} GiB) do not fit in memory: each batch decodes one chunk per "
                  "frame it reads; train.sampling=chunked decodes each chunk about once per epoch (docs/policies.md)", flush=True)
        bar = tqdm(total=c.steps, initial=self.step, disable=not c.progress, desc=f"train {c.policy.kind}/{c.policy.denoiser}")
        stop = c.steps if self.stop_at is None else min(c.steps, self.stop_at)
        log = LossLog(self.out_dir)
        try:
            self._loop(bar, log, stop)
        finally:
            log.close()
            bar.close()
        self.save()
        self.policy.eval()
        return TrainResult(self.policy, self.step, self.out_dir, self.train_loss, self.val_loss)

    def _loop(self, bar, log: LossLog, stop: int) -> None:
        running, count = torch.zeros((), device=self.device), 0
        with ThreadPoolExecutor(max_workers=1) as reader:  # reads the next batch while this step runs
            ahead = reader.submit(self.windows.batch, self._train_indices(self.step))
            while self.step < stop:
                obs, action = _to_device(*ahead.result(), self.device)
                if self.step + 1 < stop:
                    ahead = reader.submit(self.windows.batch, self._train_indices(self.step + 1))
                running, count = self._step(obs, action, running, count, bar, log, stop)

    def _step(self, obs, action, running, count, bar, log: LossLog, stop: int):
        """One optimiser step on a batch, then the logging, validation and checkpoints due at the new step."""
        c = self.config
        loss = self.policy.compute_loss(obs, action, generator=_step_generator(self.device, c.seed, self.step))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.policy.update_ema(min(c.ema_decay, (1 + self.step) / (10 + self.step)))
        self.step += 1
        running, count = running + loss.detach(), count + 1
        bar.update(1)
        if self.step % c.val_every == 0 or self.step == stop:
            self.train_loss.append((self.step, float(running) / count))
            running, count = torch.zeros((), device=self.device), 0
            self.val_loss.append((self.step, self.validate()))
            bar.set_postfix(loss=f"{self.train_loss[-1][1]:.4f}", val=f"{self.val_loss[-1][1]:.4f}")
            log.add(self.step, self.train_loss[-1][1], self.val_loss[-1][1])
            if not math.isfinite(self.train_loss[-1][1]):
                raise FloatingPointError(f"training loss became {self.train_loss[-1][1]} at step {self.step}; lower train.lr")
        if self.step % c.checkpoint_every == 0 and self.step < stop:
            self.save()
        return running, count


def train_policy(store_path: str | os.PathLike, config: TrainConfig, out_dir: str | os.PathLike, *, resume: bool = False,
                 stop_at: int | None = None) -> TrainResult:
    """Train ``config.policy`` on the demonstrations at ``store_path``; checkpoints go to ``out_dir``.

    Data keys used: ``config.policy.obs_keys`` (None: all but 'action') and 'action'. With
    ``resume=True`` a checkpoint in ``out_dir`` is continued from its saved step (a missing one
    starts afresh); without it an existing checkpoint is an error rather than overwritten.
    ``stop_at`` ends the run early at that step with a checkpoint, as a time-limited job would
    (the LR schedule still follows ``config.steps``), so a later ``resume=True`` run finishes it.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    if stop_at is not None and (isinstance(stop_at, bool) or not isinstance(stop_at, int) or stop_at < 1):
        raise ValueError(f"stop_at={stop_at!r} must be None or an integer >= 1")
    threads = torch.get_num_threads()
    if config.cpu_threads is not None:
        torch.set_num_threads(config.cpu_threads)
    try:
        return _Trainer(store_path, config, out_dir, resume, stop_at).run()
    finally:
        torch.set_num_threads(threads)
