"""Per-dimension min/max normalisation to [-1, 1] (actions, low-dim obs); images are divided by 255.

The statistics are module buffers, so they travel with the weights in the safetensors file. They are
fitted in float64, and a large offset (1e6 + small moves, unix times) is removed in float64 before the
float32 cast, so such a column trains like a centred one.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor, nn

# Dimensions whose range is below this are constant in the data. An observation's is centred, not scaled (a value
# the data never showed reads in its own units); an action's gets a half-range of MIN_RANGE / 2, so that a chunk
# sampled in [-1, 1] keeps it where the demonstrations held it (a gripper never used) instead of spreading it by ±1.
MIN_RANGE = 1e-4
# A centre whose float32 rounding would shift the normalised data by more than this is kept in float64 (a column
# with a large offset: 1e6 + small moves, unix times); other centres stay float32, as checkpoints always held them.
CENTER_SHIFT = 1e-5


def is_image_shape(shape: tuple[int, ...]) -> bool:
    """Image observations are (H, W, 3) per step (HWC, uint8 in [0, 255])."""
    return len(shape) == 3 and shape[-1] == 3


IMAGE_FIX = ("convert it in the env factory (a gymnasium.wrappers.TransformObservation: np.moveaxis a channel-first "
             "image, repeat a grey channel three times, scale [0, 1] floats by 255 to uint8), or leave the key out "
             "with policy.obs_keys=[...]")


#: A 2-d uint8 observation with both sides at least this long is a grey image, not an (n, d) array of features.
GREY_IMAGE_MIN_SIDE = 8


def check_obs_layout(key: str, shape: tuple[int, ...], dtype: np.dtype | None = None) -> None:
    """Refuse an observation the encoders would misread: values that are not numbers, three or more axes that are not
    an (H, W, 3) image, a 2-d uint8 grey image (it would be flattened into thousands of low-dim features), or an image
    that is not uint8 (it is divided by 255)."""
    if dtype is not None and not (np.issubdtype(np.dtype(dtype), np.number) or np.dtype(dtype) == np.bool_):
        raise ValueError(f"observation {key!r} holds {np.dtype(dtype)} values, which the policies cannot read (they read numbers); "
                         "leave the key out with policy.obs_keys=[...], or encode it as numbers in the env factory")
    if len(shape) >= 3 and not is_image_shape(tuple(shape)):
        raise ValueError(f"observation {key!r} has per-step shape {tuple(shape)}: the policies read vectors, (n, d) arrays "
                         f"and (H, W, 3) images (channels last, RGB uint8); {IMAGE_FIX}")
    if (dtype is not None and np.dtype(dtype) == np.uint8 and len(shape) == 2
            and min(shape) >= GREY_IMAGE_MIN_SIDE):
        raise ValueError(f"observation {key!r} has per-step shape {tuple(shape)} of uint8: a grey image, which the policies "
                         f"would read as {shape[0] * shape[1]} low-dim features; the policies read (H, W, 3) images "
                         f"(channels last, RGB uint8); {IMAGE_FIX}, or cast it to float32 if it is an array of counts")
    if dtype is not None and is_image_shape(tuple(shape)) and np.dtype(dtype) != np.uint8:
        raise ValueError(f"observation {key!r} is an (H, W, 3) image of dtype {np.dtype(dtype)}: images are read as uint8 "
                         f"in [0, 255]; {IMAGE_FIX}")


def check_image_values(key: str, value: Tensor) -> None:
    """Refuse a float image on the host whose values are not pixel levels in [0, 255]: a [0, 1] or standardised image
    would be divided by 255 again and read as a near-black one. uint8 images and device tensors are not read."""
    if not value.is_floating_point() or value.device.type != "cpu" or value.numel() == 0:
        return
    lo, hi = float(value.min()), float(value.max())
    if lo < 0 or hi > 255 or (hi <= 1 and bool((value != value.round()).any())):
        raise ValueError(f"obs[{key!r}] is a {str(value.dtype).removeprefix('torch.')} image with values in [{lo:.3g}, {hi:.3g}]: "
                         "the policy reads images as pixel levels in [0, 255] (uint8, as it was trained) and divides them by "
                         "255; pass the camera's uint8 image (from [0, 1] floats: (x * 255).round() as uint8)")


class RangeNormalizer(nn.Module):
    """Affine map x -> (x - center) / scale with center/scale from the data's min and max, fitted in float64."""

    def __init__(self, dim: int, constant_scale: float = 1.0):
        super().__init__()
        self.register_buffer("center", torch.zeros(dim))  # float64 only where float32 would move it (fit)
        self.register_buffer("scale", torch.ones(dim))
        self.constant_scale = float(constant_scale)  # the scale of a dimension constant in the data

    @torch.no_grad()
    def fit(self, data: np.ndarray | Tensor) -> None:
        """Min/max in float64; the centre stays float64 when rounding it to float32 would shift the normalised data."""
        # A tensor is taken as is (np.asarray cannot read a CUDA tensor); anything else via numpy.
        data = data.detach() if isinstance(data, Tensor) else torch.as_tensor(np.asarray(data))
        data = data.to(dtype=torch.float64).reshape(-1, self.center.numel())
        if not torch.isfinite(data).all():
            raise ValueError("cannot fit the normalizer: the data contains NaN or inf values")
        lo, hi = data.min(0).values, data.max(0).values
        half = (hi - lo) / 2
        scale = torch.where(half * 2 < MIN_RANGE, torch.full_like(half, self.constant_scale), half)
        center = (hi + lo) / 2
        shift = (center - center.float().double()).abs() / scale
        dtype = torch.float64 if bool((shift > CENTER_SHIFT).any()) else torch.float32
        self.center = center.to(self.center.device, dtype)
        self.scale.copy_(scale)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        saved = state_dict.get(prefix + "center")
        if saved is not None and saved.dtype != self.center.dtype:  # a fitted float64 centre loads as float64
            self.center = torch.zeros(self.center.shape, dtype=saved.dtype, device=self.center.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def normalize(self, x: Tensor) -> Tensor:
        """float32 (x - center) / scale, in float64 when x or the centre is float64, so a large offset goes before the cast."""
        work = torch.promote_types(torch.promote_types(x.dtype, self.center.dtype), torch.float32)
        return ((x.to(work) - self.center.to(work)) / self.scale.to(work)).to(torch.float32)

    def unnormalize(self, x: Tensor) -> Tensor:
        """x * scale + center, in float64 when the centre is, returned in x's dtype."""
        work = torch.promote_types(x.dtype, self.center.dtype)
        return (x.to(work) * self.scale.to(work) + self.center.to(work)).to(x.dtype)


def module_name(key: str) -> str:
    """An observation key as a torch submodule name, which cannot hold '.': escaped one-to-one ('robot.pos' ->
    'robot%2Epos'), and unchanged for a key without '.' or '%', so the state-dict names of such keys stay as they are."""
    return key.replace("%", "%25").replace(".", "%2E")


class PolicyNormalizer(nn.Module):
    """Normalisers for the action and for each low-dim observation key (images only rescale)."""

    def __init__(self, obs_shapes: Mapping[str, tuple[int, ...]], action_dim: int):
        super().__init__()
        self.action = RangeNormalizer(action_dim, constant_scale=MIN_RANGE / 2)
        self.lowdim_keys = [k for k, s in obs_shapes.items() if not is_image_shape(tuple(s))]
        self.obs = nn.ModuleDict({module_name(k): RangeNormalizer(int(np.prod(obs_shapes[k]))) for k in self.lowdim_keys})
        self.image_keys = [k for k, s in obs_shapes.items() if is_image_shape(tuple(s))]

    def fit(self, obs: Mapping[str, np.ndarray], action: np.ndarray) -> None:
        """Fit on whole data columns: obs {key: (T, *shape)} for the low-dim keys, action (T, A)."""
        self.action.fit(action)
        for key in self.lowdim_keys:
            self.obs[module_name(key)].fit(obs[key])

    def normalize_obs(self, obs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Low-dim keys flattened per step and mapped to [-1, 1]; images to float [0, 1]."""
        out = {}
        for key, value in obs.items():
            if key in self.lowdim_keys:
                out[key] = self.obs[module_name(key)].normalize(value.reshape(*value.shape[:2], -1))
            else:
                out[key] = value.float() / 255.0
        return out
