"""A GradedResponse from a plain config that names its parts by registry name.

    {fallback: {name: hold}}
    {steering: {reward: {name: scene_keep_out, margin: 0.02}, num_particles: 32, ...},
     fallback: {name: retreat, steps: 20}, max_steer_decisions: 3}

    {kind: return_retry, target: path, max_retries: 2, fallback: {name: hold}}

``kind`` names the response in ``RESPONSES`` (default ``graded``: a ``GradedResponse``;
``return_retry``: a ``ReturnAndRetry``; ``register_response`` adds yours). Fallbacks come from
``FALLBACKS`` (``register_fallback``), reward programs from ``REWARDS`` (``register_reward``). A part of
your own needs no registering: ``name`` (or ``kind``) may be its import path, ``'file.py:name'`` or
``'package.module:name'``, built with the other settings. This is how
``launch/conf/response/*.yaml`` are built, the same way monitor configs name their scores.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fiper.interventions.fallbacks import make_fallback
from fiper.interventions.graded import GradedResponse, check_response
from fiper.interventions.registry import Registry
from fiper.interventions.return_retry import ReturnAndRetry
from fiper.interventions.rewards import REWARDS, make_reward
from fiper.interventions.scene import SceneKeepOut
from fiper.interventions.steering import Steering
from fiper.interventions.trajectory import load_reward

REWARDS.register("scene_keep_out", SceneKeepOut, overwrite=True)
REWARDS.register("program", load_reward, overwrite=True)

RESPONSE_KEYS = ("steering", "fallback", "max_steer_decisions", "release_after", "start")


def _named(kind: str, value: Any, make) -> Any:
    if not isinstance(value, Mapping) or "name" not in value:
        raise ValueError(f"a {kind} is configured as {{name: <registered {kind}>, ...its arguments}}, got {value!r}")
    args = dict(value)
    return make(args.pop("name"), **args)


def reward_from_config(value: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> Any:
    """One reward program, or a list of them (the stages of a staged task)."""
    if isinstance(value, Sequence) and not isinstance(value, (str, Mapping)):
        return [_named("reward", v, make_reward) for v in value]
    return _named("reward", value, make_reward)


def _known(config: Mapping[str, Any], allowed: Sequence[str], what: str, takes: str) -> dict[str, Any]:
    """A copy of ``config``; unknown keys are an error listing the allowed ones."""
    unknown = sorted(set(config) - set(allowed))
    if unknown:
        raise ValueError(f"unknown {what} {unknown}; {takes} {list(allowed)}")
    return dict(config)


def graded_from_config(**config: Any) -> GradedResponse:
    """A GradedResponse from its settings (see the module docstring); unknown keys are an error."""
    cfg = _known(config, RESPONSE_KEYS, "response settings", "a response takes")
    steering = cfg.pop("steering", None)
    fallback = cfg.pop("fallback", None)
    if steering is not None:
        steering = dict(steering)
        if "reward" not in steering:
            raise ValueError("steering needs a reward: {reward: {name: <registered reward>, ...}, ...}")
        steering = Steering(reward_from_config(steering.pop("reward")), **steering)
    fallback = None if fallback is None else _named("fallback", fallback, make_fallback)
    return GradedResponse(steering, fallback, **cfg)


RETURN_KEYS = ("target", "decisions_back", "max_retries", "fallback", "start_poses", "demos", "start_key", "speed",
               "settle_steps", "tolerance", "in_distribution_below", "gripper", "max_steps")


def return_from_config(**config: Any) -> ReturnAndRetry:
    """A ReturnAndRetry from its settings; ``fallback`` is ``{name: <registered fallback>, ...}`` (default hold)."""
    cfg = _known(config, RETURN_KEYS, "return_retry settings", "it takes")
    fallback = cfg.pop("fallback", None)
    return ReturnAndRetry(fallback=None if fallback is None else _named("fallback", fallback, make_fallback), **cfg)


RESPONSES = Registry("response", {"graded": graded_from_config, "return_retry": return_from_config})


def register_response(name: str, factory: Any, *, overwrite: bool = False) -> None:
    """Make ``response_from_config({kind: name, ...})`` build ``factory(**settings)``."""
    RESPONSES.register(name, factory, overwrite=overwrite)


def response_from_config(config: Mapping[str, Any]) -> Any:
    """Build the response a config describes: ``kind`` (default ``graded``) picks it from ``RESPONSES``."""
    cfg = dict(config)
    kind = cfg.pop("kind", "graded")
    response = RESPONSES.make(str(kind), **cfg)
    check_response(response, f"response kind {kind!r}")
    return response
