"""diffusers noise schedulers for the adapter: the lazy import, construction by name, and the clean
estimate a scheduler's step implies (its ``pred_original_sample``), which is what guidance reads and moves.

diffusers is an optional dependency (``pip install 'fiper[adapters]'``); nothing here imports it
until a scheduler is built by name.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

INSTALL = "pip install 'fiper[adapters]'"
SCHEDULERS = {"ddpm": "DDPMScheduler", "ddim": "DDIMScheduler"}
PREDICTION_TYPES = ("epsilon", "sample")  # what the adapter can guide: the two diffusion_policy and lerobot train


def require_diffusers():
    """The diffusers module, or an ImportError naming the install command."""
    try:
        import diffusers
    except ImportError as err:
        raise ImportError(f"the diffusers-based policy adapter needs the diffusers package ({err}); install it with: {INSTALL}") from err
    return diffusers


def make_scheduler(kind: str, **config: Any):
    """A diffusers ``DDPMScheduler`` (kind 'ddpm') or ``DDIMScheduler`` ('ddim') built with ``config``."""
    name = SCHEDULERS.get(str(kind).lower())
    if name is None:
        raise ValueError(f"scheduler kind {kind!r} is unknown: choose one of {sorted(SCHEDULERS)} "
                         "(or build any diffusers scheduler yourself and pass it as scheduler=)")
    return getattr(require_diffusers(), name)(**config)


def _config(scheduler: Any, key: str, default: Any = None) -> Any:
    config = getattr(scheduler, "config", None)
    return config.get(key, default) if hasattr(config, "get") else getattr(config, key, default)


def check_scheduler(scheduler: Any) -> str:
    """The scheduler's prediction type, after checking it offers what the sampling loop uses."""
    missing = [a for a in ("set_timesteps", "step", "alphas_cumprod", "config") if not hasattr(scheduler, a)]
    if missing:
        raise TypeError(f"scheduler {type(scheduler).__name__} has no {missing}: pass a diffusers noise scheduler such as "
                        "DDPMScheduler or DDIMScheduler (fiper.adapters.make_scheduler('ddpm', ...) builds one); a "
                        "flow-matching sampler (FlowMatchEulerDiscreteScheduler, ...) has no noise schedule to drive, so "
                        "wrap it in an adapter of its own (docs/adapters.md, \"What an adapter must provide\")")
    prediction = _config(scheduler, "prediction_type", "epsilon")
    if prediction not in PREDICTION_TYPES:
        raise ValueError(f"scheduler prediction_type={prediction!r} is not supported by the adapter: it samples and guides "
                         f"{' and '.join(PREDICTION_TYPES)} prediction (the two diffusion_policy and lerobot train)")
    if _config(scheduler, "thresholding", False):
        raise ValueError("scheduler thresholding=True (dynamic thresholding) is not supported by the adapter; "
                         "use clip_sample=True with clip_sample_range as the source policy was trained with")
    return prediction


def alpha_bar(scheduler: Any, t: Tensor | int, like: Tensor) -> Tensor:
    """alpha_bar_t of the scheduler's training schedule, as a 0-dim tensor in ``like``'s dtype that combines with it.

    A host value stays on the host: a 0-dim CPU tensor joins device arithmetic as a scalar, where a
    copy to the device would make the host wait at every sampling step."""
    ab = scheduler.alphas_cumprod[int(t)]
    return ab.to(dtype=like.dtype) if ab.device.type == "cpu" else ab.to(device=like.device, dtype=like.dtype)


def clean_estimate(scheduler: Any, model_output: Tensor, t: Tensor | int, sample: Tensor) -> Tensor:
    """The scheduler's ``pred_original_sample`` for this step: the clean chunk the model output implies,
    clipped as the scheduler clips it (same formula as DDPMScheduler.step and DDIMScheduler.step)."""
    ab = alpha_bar(scheduler, t, sample)
    if _config(scheduler, "prediction_type", "epsilon") == "epsilon":
        x0 = (sample - (1 - ab) ** 0.5 * model_output) / ab ** 0.5
    else:
        x0 = model_output
    if _config(scheduler, "clip_sample", False):
        limit = float(_config(scheduler, "clip_sample_range", 1.0))
        x0 = x0.clamp(-limit, limit)
    return x0


def guided_output(scheduler: Any, model_output: Tensor, t: Tensor | int, direction: Tensor) -> Tensor:
    """The model output whose (unclipped) clean estimate is moved by (1 - ab_t) / sqrt(ab_t) * direction:
    eps <- eps - sqrt(1 - ab_t) * d for epsilon prediction, x0 <- x0 + (1 - ab_t) / sqrt(ab_t) * d for sample
    prediction. Both equal fiper's own sampler (policies/diffusion.py), so a direction means the same thing."""
    ab = alpha_bar(scheduler, t, model_output)
    if _config(scheduler, "prediction_type", "epsilon") == "epsilon":
        return model_output - (1 - ab) ** 0.5 * direction
    return model_output + (1 - ab) / ab ** 0.5 * direction


def noise_scale(scheduler: Any, t: Tensor | int) -> float:
    """sqrt(1 - alpha_bar_t): the GuidanceState's noise scale at training timestep ``t``."""
    return float((1 - scheduler.alphas_cumprod[int(t)].double()) ** 0.5)


def default_inference_steps(scheduler: Any) -> int:
    """diffusion_policy and lerobot sample with every training timestep when num_inference_steps is None."""
    return int(_config(scheduler, "num_train_timesteps"))
