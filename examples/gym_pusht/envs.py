"""Env factories for lerobot's gym-pusht: the nominal task and one factory per shift.

``gym_pusht/PushT-v0`` is the diffusion-policy Push-T benchmark in pymunk: a disc agent (radius 15 px) follows an
absolute target position in pixels ([0, 512]²) through a PD controller and pushes a T block into a fixed goal pose;
the episode succeeds, and ends, once the block covers more than 95 % of the goal (``info['is_success']``) and is
truncated after 300 steps of 0.1 s. The observation is ``environment_state_agent_pos``: the T's 8 keypoints (16
values, px) and the agent's measured position (``agent_pos``, px). Each shift factory is named in ``launch.stress
factories.<shift>=`` and called as ``f(severity=..., **env.kwargs)`` with severity in [0, 1], 0 being the nominal task.
"""

from __future__ import annotations

import gymnasium as gym

from examples.seeded_noise import SeededObservationNoise
from fiper.env_factory import check_severity

ENV_ID = "gym_pusht/PushT-v0"
OBS_TYPE = "environment_state_agent_pos"


def make_pusht(obs_type: str = OBS_TYPE, success_threshold: float | None = None, **kwargs) -> gym.Env:
    """The nominal task: gym-pusht's PushT-v0 as lerobot makes it; ``kwargs`` go to gym.make (render_mode, damping, ...).
    ``success_threshold`` replaces gym-pusht's 0.95, the share of the goal the T must cover to succeed (a looser one
    lets a tiny test run reach every stage; the benchmark is 0.95)."""
    try:
        import gym_pusht  # noqa: F401  (registers gym_pusht/PushT-v0)
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(f"examples/gym_pusht needs gym-pusht (lerobot's Push-T env): pip install gym-pusht "
                                  f"(missing module {err.name!r})") from err
    if obs_type not in (OBS_TYPE, "state"):
        raise ValueError(f"obs_type={obs_type!r}: this example runs gym-pusht's low-dim observations, "
                         f"{OBS_TYPE!r} (the default) or 'state'; the pixel observations need the *_image policy groups")
    env = gym.make(ENV_ID, obs_type=obs_type, **kwargs)
    if success_threshold is not None:
        if not (isinstance(success_threshold, (int, float)) and 0.0 < success_threshold <= 1.0):
            raise ValueError(f"success_threshold must be the share of the goal covered, in (0, 1], got {success_threshold!r} "
                             "(gym-pusht's is 0.95: env.kwargs.success_threshold=0.95)")
        env.unwrapped.success_threshold = float(success_threshold)
    return env


def slippery_floor(severity: float = 0.0, **kwargs) -> gym.Env:
    """Shift: the T slides on after a push. pymunk's space damping is the share of velocity a body keeps per second;
    gym-pusht's 0 stops the T as soon as the agent lets go (a quasi-static push), here 0.05·severity (the T keeps
    0.05^0.1 = 74 % of its speed per 0.1 s step at severity 1)."""
    severity = check_severity(severity, "slippery_floor")
    return make_pusht(**({"damping": 0.05 * severity} if severity > 0 else {}), **kwargs)


def sluggish_agent(severity: float = 0.0, **kwargs) -> gym.Env:
    """Shift: a weaker position controller, the agent's PD gains k_p × (1 − 0.7·severity), k_v × (1 − 0.5·severity)
    (gym-pusht's are 100 and 20): the agent lags its targets further and overshoots them."""
    severity = check_severity(severity, "sluggish_agent")
    env = make_pusht(**kwargs)
    env.unwrapped.k_p *= 1.0 - 0.7 * severity
    env.unwrapped.k_v *= 1.0 - 0.5 * severity
    return env


def obs_noise(severity: float = 0.0, **kwargs) -> gym.Env:
    """Shift: a noisy block tracker, std 4·severity px on the T's keypoints (``environment_state``), seeded with the
    episode; the agent's measured position stays exact."""
    severity = check_severity(severity, "obs_noise")
    env = make_pusht(**kwargs)
    key = "environment_state" if isinstance(env.observation_space, gym.spaces.Dict) else None
    return SeededObservationNoise(env, 4.0 * severity, key=key)
