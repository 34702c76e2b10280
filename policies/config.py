"""Self-validating configuration of a generative chunk policy and of its training run.

Both are plain dataclasses so hydra builds them with ``_target_`` and checkpoints store them as
json. Every bad value raises ``ValueError`` naming the field, the value and what is allowed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

KINDS = ("diffusion", "flow")
DENOISERS = ("unet", "mlp")
ENCODERS = ("lowdim", "image")
DEVICES = ("auto", "cpu", "cuda")


def _fail(name: str, value: Any, need: str) -> None:
    raise ValueError(f"{name}={value!r} is invalid: {need}")


def _positive_int(obj: Any, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            _fail(name, value, "must be an integer >= 1")


class _DictConfig:
    """json round trip of a config dataclass; unknown keys are refused by name."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} fields {unknown}; known fields: {sorted(known)}")
        return cls(**data)


@dataclass
class PolicyConfig(_DictConfig):
    """What a policy is: its generative kind, networks, time-line and sampler.

    ``obs_keys`` None means every data key of the training store except 'action'. Image keys are
    those whose per-step shape is (H, W, 3); they need ``encoder='image'``.
    """

    kind: str = "diffusion"  # "diffusion" (DDPM/DDIM) or "flow" (flow matching, Euler)
    denoiser: str = "unet"  # "unet" (1-D temporal U-Net) or "mlp"
    encoder: str = "lowdim"  # "lowdim" (MLP over flattened history) or "image"
    obs_keys: list[str] | None = None
    n_obs_steps: int = 2
    horizon: int = 16
    n_action_steps: int = 8
    embed_dim: int = 64  # D: the observation embedding the denoiser is conditioned on
    encoder_hidden: int = 128
    # Image encoder: conv widths and spatial-softmax keypoints per image key.
    image_channels: list[int] = field(default_factory=lambda: [16, 32])
    image_keypoints: int = 16
    image_downsample: int = 1  # average-pool factor applied before the trunk (2: 96 px -> 48 px, ~4x cheaper)
    # Denoisers.
    down_dims: list[int] = field(default_factory=lambda: [32, 64, 128])
    kernel_size: int = 5
    n_groups: int = 8
    time_embed_dim: int = 64
    mlp_hidden: int = 256
    mlp_layers: int = 3
    # Generative process.
    num_train_timesteps: int = 100  # diffusion only: DDPM steps of the cosine schedule
    num_inference_steps: int = 16  # DDIM steps (diffusion) or Euler steps (flow)
    ddim_eta: float = 0.0
    clip_sample: bool = True  # keep chunks in the demos' action range: diffusion clips each clean estimate, flow the result

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            _fail("kind", self.kind, f"choose one of {KINDS}")
        if self.denoiser not in DENOISERS:
            _fail("denoiser", self.denoiser, f"choose one of {DENOISERS}")
        if self.encoder not in ENCODERS:
            _fail("encoder", self.encoder, f"choose one of {ENCODERS}")
        if self.obs_keys is not None:
            self.obs_keys = [str(k) for k in self.obs_keys]
            if not self.obs_keys or len(set(self.obs_keys)) != len(self.obs_keys):
                _fail("obs_keys", self.obs_keys, "give a non-empty list of distinct keys, or None for all data keys but 'action'")
            if "action" in self.obs_keys:
                _fail("obs_keys", self.obs_keys, "'action' is the prediction target, not an observation")
        _positive_int(self, "n_obs_steps", "horizon", "n_action_steps", "embed_dim", "encoder_hidden", "image_keypoints",
                      "image_downsample", "kernel_size", "n_groups", "time_embed_dim", "mlp_hidden", "mlp_layers",
                      "num_train_timesteps", "num_inference_steps")
        if self.n_action_steps > self.horizon:
            _fail("n_action_steps", self.n_action_steps, f"cannot exceed horizon={self.horizon}")
        if self.kernel_size % 2 == 0:
            _fail("kernel_size", self.kernel_size, "must be odd so convolutions keep the horizon length")
        self.down_dims = [int(d) for d in self.down_dims]
        self.image_channels = [int(c) for c in self.image_channels]
        if not self.down_dims or any(d < 1 or d % self.n_groups for d in self.down_dims):
            _fail("down_dims", self.down_dims, f"give >= 1 widths, each a positive multiple of n_groups={self.n_groups}")
        if not self.image_channels or any(c < 1 or c % self.n_groups for c in self.image_channels):
            _fail("image_channels", self.image_channels, f"give >= 1 widths, each a positive multiple of n_groups={self.n_groups}")
        factor = 2 ** (len(self.down_dims) - 1)
        if self.denoiser == "unet" and self.horizon % factor:
            _fail("horizon", self.horizon, f"the U-Net with {len(self.down_dims)} levels halves it {len(self.down_dims) - 1} times: use a multiple of {factor}")
        if self.time_embed_dim % 2:
            _fail("time_embed_dim", self.time_embed_dim, "must be even (sine and cosine halves)")
        if self.kind == "diffusion" and self.num_inference_steps > self.num_train_timesteps:
            _fail("num_inference_steps", self.num_inference_steps, f"DDIM cannot take more steps than num_train_timesteps={self.num_train_timesteps}")
        if not 0.0 <= float(self.ddim_eta) <= 1.0:
            _fail("ddim_eta", self.ddim_eta, "must lie in [0, 1] (0 = deterministic DDIM)")
        self.ddim_eta = float(self.ddim_eta)



@dataclass
class TrainConfig(_DictConfig):
    """How to train: optimisation, EMA, validation split, checkpoints, device.

    ``device='auto'`` picks CUDA when available. Small models train fastest on CPU with
    ``cpu_threads=1`` (thread hand-offs cost more than the tiny matrix products save). Checkpoints go to the run's output directory
    every ``checkpoint_every`` steps and at the end; a run restarted with ``resume=True`` continues
    from the saved step.
    """

    policy: PolicyConfig = field(default_factory=PolicyConfig)
    steps: int = 2000
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-6
    warmup_steps: int = 50
    ema_decay: float = 0.995
    val_fraction: float = 0.1
    failed_demos: str = "skip"  # skip: leave out episodes whose meta/success is false | keep: train on every episode
    sampling: str = "uniform"  # uniform: windows drawn with replacement | chunked: TrainingWindows.epoch_order
    memory_limit: int | None = None  # bytes of the store's columns held in memory (None: TrainingWindows' 2 GiB)
    cache_bytes: int | None = None  # bytes of decoded chunks cached for the columns read from disk (None: 256 MiB)
    val_every: int = 200
    val_batches: int = 4
    checkpoint_every: int = 1000
    seed: int = 0
    device: str = "auto"
    cpu_threads: int | None = None  # torch intra-op threads while training; None keeps torch's setting
    progress: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.policy, dict):
            self.policy = PolicyConfig.from_dict(self.policy)
        if not isinstance(self.policy, PolicyConfig):
            _fail("policy", self.policy, "must be a PolicyConfig (or a dict of its fields)")
        _positive_int(self, "steps", "batch_size", "val_every", "val_batches", "checkpoint_every")
        if isinstance(self.warmup_steps, bool) or not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            _fail("warmup_steps", self.warmup_steps, "must be an integer >= 0")
        if not float(self.lr) > 0:
            _fail("lr", self.lr, "must be > 0")
        if float(self.weight_decay) < 0:
            _fail("weight_decay", self.weight_decay, "must be >= 0")
        if not 0.0 <= float(self.ema_decay) < 1.0:
            _fail("ema_decay", self.ema_decay, "must lie in [0, 1) (0 = no averaging)")
        if not 0.0 <= float(self.val_fraction) < 1.0:
            _fail("val_fraction", self.val_fraction, "must lie in [0, 1)")
        if self.failed_demos not in ("skip", "keep"):
            _fail("failed_demos", self.failed_demos, "choose 'skip' (leave out episodes whose meta/success is false) or 'keep'")
        if self.sampling not in ("uniform", "chunked"):
            _fail("sampling", self.sampling, "choose 'uniform' (windows drawn with replacement) or 'chunked' (every window "
                  "once per epoch, in an order that decodes each chunk of an image store read from disk about once)")
        for name in ("memory_limit", "cache_bytes"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                _fail(name, value, "must be a number of bytes >= 0 (e.g. 4294967296 for 4 GiB), or None for the default")
        if not isinstance(self.seed, int) or self.seed < 0:
            _fail("seed", self.seed, "must be an integer >= 0")
        if self.cpu_threads is not None:
            _positive_int(self, "cpu_threads")
        if self.device not in DEVICES and not str(self.device).startswith("cuda:"):
            _fail("device", self.device, f"choose one of {DEVICES} or 'cuda:<index>'")
        self.lr, self.weight_decay = float(self.lr), float(self.weight_decay)
        self.ema_decay, self.val_fraction = float(self.ema_decay), float(self.val_fraction)

