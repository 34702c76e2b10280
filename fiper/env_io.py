"""What an env hands and takes, checked where fiper stores or acts on it: observations as flat dicts of arrays
(:func:`observation_dict`, the one place naming observation keys) and actions of the action space's shape, finite,
clipped to its bounds (:func:`checked_action`, :func:`clip_to_space`). Collection and the control loop both use it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from fiper.env_factory import SetupError

OBS_KEY = "obs"


def observation_dict(obs: Any) -> Mapping[str, Any]:
    """A flat dict observation as it is; a nested one flattened to dotted keys (``{'robot': {'pos': …}}`` as
    ``{'robot.pos': …}``); one array (a gymnasium ``Box``) as ``{'obs': array}``.

    The one place that names observation keys: collection stores them, a policy trained on that store
    reads them, and the control loop's history builds them the same way.
    """
    if isinstance(obs, Mapping):
        return _flat(obs) if any(isinstance(v, Mapping) for v in obs.values()) else obs
    if isinstance(obs, tuple):
        raise SetupError("the observation is a tuple (a gymnasium Tuple space), which has no keys: return a dict "
                        "or one array, e.g. wrap the env in gymnasium.wrappers.FlattenObservation")
    return {OBS_KEY: obs}


def _flat(obs: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in obs.items():
        name = f"{prefix}{key}"
        items = _flat(value, f"{name}.") if isinstance(value, Mapping) else {name: value}
        clash = set(items) & set(out)
        if clash:
            raise SetupError(f"the nested observation flattens to the key {sorted(clash)[0]!r} twice; rename one of them in "
                             "the env factory (gymnasium.wrappers.TransformObservation)")
        out.update(items)
    return out


def observation_arrays(obs: Any) -> dict[str, np.ndarray]:
    """The observation as the store keeps it: a flat dict of host arrays, copied."""
    obs = observation_dict(obs)
    if "action" in obs:
        raise ValueError("an observation key is named 'action', which the store reserves for the actions taken; rename "
                         "it in the env factory, e.g. gymnasium.wrappers.TransformObservation(env, lambda o: {('prev_action' "
                         "if k == 'action' else k): v for k, v in o.items()}, <the renamed observation space>)")
    from fiper.scores.inputs import host_array  # a torch tensor from any device (ManiSkill's observations)

    # copied: an env may hand out one buffer it rewrites every step (a renderer's render(out=...)), so kept rows would
    # all become its last frame
    return {k: np.array(host_array(v)) for k, v in obs.items()}


def declared_shapes(space: Any, prefix: str = "") -> dict[str, tuple]:
    """The per-step shape of every observation key an observation space declares (a gymnasium ``Box``, or a ``Dict`` of
    them, nested keys dotted as :func:`observation_dict` names them); empty for a space that declares no shapes."""
    spaces = getattr(space, "spaces", None)
    if isinstance(spaces, Mapping):
        return {k: v for key, sub in spaces.items() for k, v in declared_shapes(sub, f"{prefix}{key}.").items()}
    shape = getattr(space, "shape", None)
    return {(prefix[:-1] or OBS_KEY): tuple(shape)} if isinstance(shape, tuple) and spaces is None else {}


def undeclared_shapes(observed: Mapping[str, tuple], space: Any) -> str | None:
    """A note naming the observation keys whose shape differs from the one the env's observation space declares (an env
    asked for 64 x 64 images that renders 480 x 640, as gym-aloha 0.1.5 does), or None when they agree."""
    declared = declared_shapes(space)
    differ = [f"{key} {tuple(shape)} where it declares {declared[key]}" for key, shape in observed.items()
              if key in declared and tuple(shape) != declared[key]]
    if not differ:
        return None
    return (f"the env's observations are not the shapes its observation space declares ({'; '.join(differ)}); they are "
            "stored and trained on as observed, so a size asked of the env through its space is not what it delivers: fix "
            "it in the env factory (render or resize to the size, or declare the space it emits)")


def layout_change(first: Mapping[str, tuple], now: Mapping[str, tuple], seed: int, step: int) -> str:
    """Why the observation at ``step`` does not have the keys and shapes of the episode's first one."""
    changes = [f"{k!r} missing" for k in first if k not in now] + [f"{k!r} added" for k in now if k not in first]
    changes += [f"{k!r} {first[k]} -> {now[k]}" for k in first if k in now and first[k] != now[k]]
    return (f"the env's observation at step {step} of seed {seed} changed its layout ({'; '.join(changes)}): every step must "
            "return the keys and shapes the first observation had, which a policy reads; fix the env (its observation_space "
            "says what it should return); episodes stored before it are kept")


def checked_action(action: Any, env, seed: int, step: int) -> np.ndarray:
    """The expert's action as an array of the env's action shape with finite values, else a ValueError saying which:
    collection's check, and the pipeline's seeded-reset check before it (fiper.control.seeded_resets)."""
    try:
        array = np.asarray(action, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"the expert's action at step {step} of seed {seed} is not numeric ({err}); its act(obs, info) "
                         "must return an array of the env's action shape") from None
    shape = tuple(getattr(getattr(env, "action_space", None), "shape", None) or array.shape)
    if array.shape != shape:
        raise ValueError(f"the expert's action at step {step} of seed {seed} has shape {array.shape}, the env's action space "
                         f"{shape}; return one action per step (e.g. np.zeros({shape}))")
    if not np.isfinite(array).all():
        raise ValueError(f"the expert's action at step {step} of seed {seed} is not finite ({array.tolist()}); "
                         "check the expert's controller (gains, divisions) for that state")
    return array


BOUNDS_TOLERANCE = 0.01  # of an entry's range: jitter at a bound (which an actuator clamps) is kept as commanded


def clip_to_space(action: np.ndarray, space: Any) -> tuple[np.ndarray, float]:
    """``action`` clipped to ``space``'s bounds where it leaves them by more than ``BOUNDS_TOLERANCE`` of an entry's
    range, and that largest excursion as a share of the range (0.0 when nothing was clipped, or without bounds).

    Such an action is what an env that clips executes (Meta-World's scripted policies command up to 10 on its [-1, 1]
    space); stored unclipped, the policy would learn values the env never executed.
    """
    low, high = getattr(space, "low", None), getattr(space, "high", None)
    if low is None or high is None:
        return action, 0.0
    if np.all(action >= low) and np.all(action <= high):  # the usual case, once per env step in the control loop
        return action, 0.0
    low = np.broadcast_to(np.asarray(low, np.float64), action.shape)
    high = np.broadcast_to(np.asarray(high, np.float64), action.shape)
    with np.errstate(invalid="ignore"):  # a half-bounded entry: measured against a unit range, or its bound's size
        span = np.where(np.isfinite(high - low), high - low, np.maximum(1.0, np.nan_to_num(np.fmin(np.abs(low), np.abs(high)))))
        excess = np.maximum(low - action, action - high) / span
    worst = float(np.nanmax(excess, initial=0.0))
    if worst <= BOUNDS_TOLERANCE:
        return action, 0.0
    return np.clip(action, low, high), worst
