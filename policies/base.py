"""What diffusion and flow policies share: networks, normalizer, EMA, input checks, guidance, saving.

Time-line of one decision (n_obs_steps=2, horizon=16, n_action_steps=8)::

    obs:       |o-1|o0 |                                  <- encode(): history of n_obs_steps
    predicted:     |a0 |a1 |a2 |a3 |a4 |a5 |a6 |a7 |a8 | ... |a15|   <- sample(): H steps from t=0
    executed:      |a0 |a1 |a2 |a3 |a4 |a5 |a6 |a7 |          <- n_action_steps, then re-plan

A subclass supplies the generative process: ``_loss`` (training target in normalised action
space) and ``_sample_normalized`` (the sampling loop calling ``_denoise`` and ``_guide``).
"""

from __future__ import annotations

import copy
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from fiper.guidance_checks import guidance_answer, raise_first_fault, reindex
from fiper.protocol import Guidance, GuidanceState, check_embedding, check_observation
from policies.checkpoint import write_policy_files
from policies.config import PolicyConfig
from policies.denoisers import MLPDenoiser, TemporalUNet
from policies.encoders import ImageEncoder, LowDimEncoder
from policies.normalizer import PolicyNormalizer, check_image_values, check_obs_layout, is_image_shape


class PolicyNet(nn.Module):
    """Observation encoder + denoiser, trained end to end."""

    def __init__(self, config: PolicyConfig, obs_shapes: Mapping[str, tuple[int, ...]], action_dim: int):
        super().__init__()
        c = config
        if c.encoder == "image":
            self.encoder = ImageEncoder(obs_shapes, c.n_obs_steps, c.encoder_hidden, c.embed_dim, c.image_channels, c.image_keypoints, c.n_groups,
                                        c.image_downsample)
        else:
            self.encoder = LowDimEncoder(obs_shapes, c.n_obs_steps, c.encoder_hidden, c.embed_dim)
        if c.denoiser == "unet":
            self.denoiser = TemporalUNet(action_dim, c.embed_dim, c.down_dims, c.kernel_size, c.n_groups, c.time_embed_dim)
        else:
            self.denoiser = MLPDenoiser(action_dim, c.horizon, c.embed_dim, c.mlp_hidden, c.mlp_layers, c.time_embed_dim)


class ChunkPolicy(nn.Module, ABC):
    """A generative action-chunk policy implementing fiper's GenerativePolicy protocol."""

    checkpoint_marks: dict[str, str] = {}  # written into config.json: how this class's saved settings are read

    kind = ""  # "diffusion" or "flow", set by subclasses

    def __init__(self, config: PolicyConfig, obs_shapes: Mapping[str, tuple[int, ...]], action_dim: int):
        super().__init__()
        if config.kind != self.kind:
            raise ValueError(f"{type(self).__name__} needs PolicyConfig(kind={self.kind!r}), got kind={config.kind!r}; use policies.build_policy to pick the class")
        if not obs_shapes:
            raise ValueError("obs_shapes is empty: a policy needs at least one observation key")
        if config.obs_keys is not None and list(obs_shapes) != config.obs_keys:
            raise ValueError(f"obs_shapes keys {list(obs_shapes)} differ from config.obs_keys {config.obs_keys}")
        for key, shape in obs_shapes.items():
            check_obs_layout(str(key), tuple(shape))
        if isinstance(action_dim, bool) or int(action_dim) != action_dim or action_dim < 1:
            raise ValueError(f"action_dim={action_dim!r} must be an integer >= 1")
        self.config = config
        self.obs_shapes = {str(k): tuple(int(d) for d in s) for k, s in obs_shapes.items()}
        self.horizon, self.n_action_steps, self.n_obs_steps = config.horizon, config.n_action_steps, config.n_obs_steps
        self.action_dim, self.embedding_dim = int(action_dim), config.embed_dim
        self.normalizer = PolicyNormalizer(self.obs_shapes, self.action_dim)
        self.model = PolicyNet(config, self.obs_shapes, self.action_dim)
        self.ema = copy.deepcopy(self.model).requires_grad_(False)

    # ------------------------------------------------------------------ protocol
    @property
    def device(self) -> torch.device:
        return self.normalizer.action.center.device

    def reset(self) -> None:
        """Nothing to clear: the policy keeps no state between decisions (history comes in obs)."""

    @torch.no_grad()
    def encode(self, obs: Mapping[str, Tensor]) -> Tensor:
        """Observation history {key: (N, n_obs_steps, *shape)} -> embedding (N, D), with the EMA encoder."""
        return self.embed(self.check_obs(obs), use_ema=True)

    def sample(self, embedding: Tensor, num_samples: int, *, generator: torch.Generator | None = None,
               guidance: Guidance | None = None) -> Tensor:
        """``num_samples`` chunks per embedding, one batched call: (N, B, H, A) in environment units."""
        embedding = check_embedding(embedding, self.embedding_dim, self.device)
        if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or num_samples < 1:
            raise ValueError(f"num_samples={num_samples!r} must be an integer >= 1")
        if generator is not None and generator.device.type != self.device.type:
            raise ValueError(f"generator is on {generator.device} but the policy is on {self.device}; create it with torch.Generator(device=policy.device)")
        n = embedding.shape[0]
        noise = torch.randn((n, int(num_samples), self.horizon, self.action_dim), generator=generator, device=self.device)
        cond = embedding.repeat_interleave(int(num_samples), dim=0)
        x = self._sample_normalized(noise, cond, generator, guidance)
        return self.normalizer.action.unnormalize(x).detach()

    # ------------------------------------------------------------------ input checks
    def check_obs(self, obs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Validated observation tensors on the policy's device; ValueError names what is wrong."""
        checked = check_observation(obs, self.obs_shapes, self.n_obs_steps, self.device)
        for key, shape in self.obs_shapes.items():
            if is_image_shape(shape):
                check_image_values(key, torch.as_tensor(obs[key]))
        return checked

    # ------------------------------------------------------------------ networks
    def embed(self, obs: Mapping[str, Tensor], use_ema: bool = False) -> Tensor:
        """Normalise validated obs and run the (EMA or training) encoder: (N, D)."""
        net = self.ema if use_ema else self.model
        return net.encoder(self.normalizer.normalize_obs(obs))

    def compute_loss(self, obs: Mapping[str, Tensor], action: Tensor, *, generator: torch.Generator | None = None,
                     use_ema: bool = False) -> Tensor:
        """Training loss of one batch: obs {key: (b, n_obs_steps, ...)}, action (b, H, A) in env units."""
        net = self.ema if use_ema else self.model
        cond = net.encoder(self.normalizer.normalize_obs(obs))
        return self._loss(net.denoiser, self.normalizer.action.normalize(action), cond, generator)

    def _denoise(self, x: Tensor, t: float, cond: Tensor) -> Tensor:
        """EMA denoiser prediction for (N, B, H, A) samples at scalar time ``t``, as one (N*B) batch."""
        flat = x.reshape(-1, self.horizon, self.action_dim)
        times = torch.full((flat.shape[0],), float(t), device=x.device)
        with torch.no_grad():
            return self.ema.denoiser(flat, times, cond).reshape(x.shape)

    def _guide(self, guidance: Guidance | None, x: Tensor, pred: Tensor, x0: Tensor, step: int, n_steps: int,
               noise_scale: float, checks: list) -> tuple[Tensor, Tensor, Tensor | None]:
        """Ask the hook; re-order (x, pred) by its indices; return them and its direction (or None).

        The answer is checked by :func:`fiper.guidance_checks.guidance_answer`: value checks become
        device flags in ``checks``, read once after the loop by :meth:`_check_guidance`.
        """
        if guidance is None:
            return x, pred, None
        state = GuidanceState(x=x, x0=self.normalizer.action.unnormalize(x0).detach(), step=step, n_steps=n_steps,
                              progress=(step + 1) / n_steps, kind=self.kind, noise_scale=float(noise_scale),
                              action_scale=self.normalizer.action.scale)
        indices, direction = guidance_answer(guidance(state), tuple(x.shape), x.dtype, x.device, step, checks)
        if indices is not None:
            x, pred = reindex(indices, x, pred)
        return x, pred, direction

    _check_guidance = staticmethod(raise_first_fault)  # after the sampling loop: its one read

    @torch.no_grad()
    def update_ema(self, decay: float) -> None:
        """ema <- decay * ema + (1 - decay) * model, for parameters and buffers."""
        ema_p, model_p = list(self.ema.parameters()), list(self.model.parameters())
        torch._foreach_lerp_(ema_p, model_p, 1.0 - decay)
        for e, m in zip(self.ema.buffers(), self.model.buffers()):
            e.copy_(m)

    def fit_normalizer(self, obs: Mapping[str, np.ndarray], action: np.ndarray) -> None:
        """Fit min/max statistics on whole data columns (low-dim obs keys and the action)."""
        self.normalizer.fit(obs, action)  # it reads its low-dim keys only

    # ------------------------------------------------------------------ saving
    def save(self, directory: str | os.PathLike, info: Mapping | None = None) -> Path:
        """Write config.json + model.safetensors (model, EMA, normalizer); load with policies.load_policy.

        ``info`` (json-serialisable, e.g. the training step) is stored in config.json under "info".
        """
        return write_policy_files(directory, self.checkpoint_meta(info), self.state_dict())

    def checkpoint_meta(self, info: Mapping | None = None) -> dict:
        """What config.json records: the kind, the PolicyConfig, the shapes, ``info`` and the policy's checkpoint marks."""
        return {"kind": self.kind, "policy": self.config.to_dict(), "action_dim": self.action_dim,
                "obs_shapes": {k: list(s) for k, s in self.obs_shapes.items()}, "info": dict(info or {}), **self.checkpoint_marks}

    # ------------------------------------------------------------------ generative process
    @abstractmethod
    def _loss(self, denoiser: nn.Module, x1: Tensor, cond: Tensor, generator: torch.Generator | None) -> Tensor:
        """Training loss for clean normalised chunks ``x1`` (b, H, A) conditioned on ``cond`` (b, D)."""

    @abstractmethod
    def _sample_normalized(self, noise: Tensor, cond: Tensor, generator: torch.Generator | None,
                           guidance: Guidance | None) -> Tensor:
        """Turn ``noise`` (N, B, H, A) into normalised chunks, conditioned on ``cond`` (N*B, D)."""
