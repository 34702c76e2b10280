"""Reconstruction novelty: how badly a small convolutional autoencoder, fitted on the fit decisions' camera images,
redraws the decision's image; a reference that reads nothing of the policy.

An image policy's encoder keeps what its task needs (keypoints on the object and the gripper) and drops the rest, so
a dark block in the robot's way hardly moves its embedding; pooled pixels (``obs_novelty``) hide the same block among
the arm's and the object's motion, which varies far more across successes. An autoencoder fitted on the
in-distribution frames learns to redraw the scenes it saw, the arm and the object wherever they were, and fails on
what it never saw, wherever it appears.

Each image key (``fiper.scores.images``: both sides at least 16 pixels, a channel axis of at most 4 first or last)
is scaled to [0, 1] (uint8 / 255; other dtypes as given), mean-pooled to ``image_size`` x ``image_size`` (a smaller
image's pixels repeated), and the keys' channels are stacked. The
score is the mean squared difference between that input and its reconstruction. The autoencoder (stride-2
convolutions of ``widths`` channels down to a ``latent``-wide code, and back) trains with fiper's score training
loop (AdamW, cosine decay, early stopping on held-out fit episodes) from the fit seed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from fiper.nn import default_init_, load_module_tensors, module_tensors
from fiper.scores.images import IMAGE_RULE, channels_first, image_axes, pool_image
from fiper.scores.obs_novelty import ObservationNovelty
from fiper.scores.training import SMALL_NET_TRAIN, TrainConfig, TrainResult, episode_split, train


def pooled_images(rows: np.ndarray, size: int) -> np.ndarray:
    """(n, *image) rows -> (n, C * size * size) float32: scaled to [0, 1] when uint8, channels first, mean-pooled
    (an image smaller than ``size`` has its pixels repeated)."""
    x = channels_first(np.asarray(rows, dtype=np.float64) / (255.0 if rows.dtype == np.uint8 else 1.0))
    return pool_image(x, size, fill=True).astype(np.float32).reshape(x.shape[0], -1)


class ConvAutoencoder(nn.Module):
    """Stride-2 convolutions (4 x 4 kernels) to a ``latent``-wide code and transposed convolutions back."""

    def __init__(self, channels: int, size: int, widths: Sequence[int], latent: int):
        super().__init__()
        side, last = size // 2 ** len(widths), int(widths[-1])
        ins = [channels, *widths[:-1]]
        down: list[nn.Module] = []
        for a, b in zip(ins, widths):
            down += [nn.Conv2d(a, int(b), 4, 2, 1), nn.ReLU()]
        self.encoder = nn.Sequential(*down, nn.Flatten(), nn.Linear(last * side * side, latent))
        up: list[nn.Module] = [nn.Linear(latent, last * side * side), nn.Unflatten(1, (last, side, side)), nn.ReLU()]
        outs = [*reversed(ins)]
        for i, (a, b) in enumerate(zip(reversed(widths), outs)):
            up.append(nn.ConvTranspose2d(int(a), int(b), 4, 2, 1))
            if i < len(widths) - 1:
                up.append(nn.ReLU())
        self.decoder = nn.Sequential(*up)

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.encoder(x))

    def error(self, x: Tensor) -> Tensor:
        """Mean squared reconstruction error per image (n,)."""
        return (self(x) - x).pow(2).flatten(1).mean(dim=1)


class ReconstructionNovelty(ObservationNovelty):
    """Mean squared error of an autoencoder's reconstruction of the decision's camera images.

    It reads the observation as ``obs_novelty`` does (its keys, checks and offline chunks, inherited from it)."""

    name = "reconstruction"
    dtype = torch.float32
    reads_images = True  # an evaluation of stores without a camera image leaves it out (fiper.evaluation.runnable)

    def __init__(self, keys: list[str] | None = None, image_size: int = 32, widths: Sequence[int] = (16, 32, 32),
                 latent: int = 32, train: TrainConfig | Mapping[str, Any] | None = None):
        widths = [int(w) for w in widths] if isinstance(widths, Sequence) and not isinstance(widths, str) else widths
        if not isinstance(widths, list) or not widths or min(widths) < 1:
            raise ValueError(f"{self.name}: widths must be a non-empty list of channel counts >= 1, got {widths!r}")
        if isinstance(image_size, bool) or int(image_size) < 2 ** len(widths) or int(image_size) % 2 ** len(widths):
            raise ValueError(f"{self.name}: image_size must be a multiple of 2 ** len(widths) = {2 ** len(widths)} (each of "
                             f"the {len(widths)} convolutions halves the side), got {image_size!r}")
        if isinstance(latent, bool) or int(latent) < 1:
            raise ValueError(f"{self.name}: latent must be an integer >= 1 (the code's width), got {latent!r}")
        super().__init__(keys=keys, image_size=int(image_size))  # validates keys under this score's name
        cfg = TrainConfig.of(train, **{**SMALL_NET_TRAIN, "lr": 2e-3}, batch_size=64, max_epochs=40, patience=5)
        self._config = {"keys": self._config["keys"], "image_size": int(image_size), "widths": widths, "latent": int(latent),
                        "train": cfg.to_dict()}
        self.net: ConvAutoencoder | None = None
        self.channels: int | None = None
        self.fit_result: TrainResult | None = None

    # ------------------------------------------------------------------ inputs
    def _keys(self, observations: Any, what: str) -> list[str]:
        """The configured keys, or (at the fit, none configured) every image key of the observations."""
        keys = super()._keys(observations, what)
        if self._config["keys"] is not None or self.key_shapes:
            return keys
        images = [k for k in keys if image_axes(observations[k].shape[1:]) is not None]
        if not images:
            shapes = {k: tuple(int(s) for s in observations[k].shape[1:]) for k in keys}
            raise ValueError(f"{self.name} reconstructs camera images but {what} holds none (per-step shapes {shapes}); "
                             "record the camera (record_keys), or score vector observations with obs_novelty")
        return images

    def _key_features(self, key: str, rows: np.ndarray) -> np.ndarray:
        if image_axes(rows.shape[1:]) is None:
            raise ValueError(f"{self.name}: observation {key!r} has per-step shape {tuple(rows.shape[1:])}, not an image "
                             f"({IMAGE_RULE}); list only camera keys in its keys, and score vector observations with "
                             "obs_novelty")
        return pooled_images(rows, self._config["image_size"])

    def _images(self, features: Any) -> Tensor:
        s = self._config["image_size"]
        return torch.as_tensor(np.asarray(features), dtype=torch.float32, device=self.device).reshape(-1, self.channels, s, s)

    def _build(self) -> ConvAutoencoder:
        c = self._config
        return ConvAutoencoder(self.channels, c["image_size"], c["widths"], c["latent"]).to(self.device)

    # ------------------------------------------------------------------ fit / score
    def _fit(self, embeddings: Tensor, samples: None, decision_ends: np.ndarray, seed: int) -> None:
        s = self._config["image_size"]
        self.channels = int(embeddings.shape[1]) // (s * s)
        x = self._images(embeddings)
        cfg = TrainConfig.of(self._config["train"])
        tr, va = (torch.as_tensor(i, device=self.device) for i in episode_split(decision_ends, cfg.val_fraction, seed))
        self.net = default_init_(self._build(), generator=torch.Generator().manual_seed(seed)).to(self.device)
        self.fit_result = train(self.net, lambda b, g: self.net.error(b[0]).mean(), (x[tr],), (x[va],), cfg, seed)
        self.net.eval()

    def _score(self, embeddings: Any, samples: None) -> np.ndarray:
        with torch.no_grad():
            return self.net.error(self._images(embeddings)).double().cpu().numpy()

    # ------------------------------------------------------------------ state
    def _tensors(self) -> dict[str, Tensor]:
        return {**self._shape_tensors(), "channels": torch.tensor(self.channels, dtype=torch.int64), **module_tensors(self.net, "net")}

    def _load_tensors(self, tensors: Mapping[str, Tensor]) -> None:
        self._load_key_shapes(tensors, "channels")
        self.channels = int(tensors["channels"])
        self.net = self._build()
        load_module_tensors(self.net, dict(tensors), "net")
        self.net.eval()
