"""Meta-World's own scripted policy as a fiper expert: ``launch.collect expert=examples.metaworld_push.expert:ScriptedExpert``.

``ScriptedExpert(env)`` finds the policy of the env's task in ``metaworld.policies.ENV_POLICY_MAP`` from the env's
class, so it serves any Meta-World v3 task. Its actions are clipped to the env's [-1, 1]: the scripted policies
command more (push-v3's up to 2.7, on 285 of 606 steps over seeds 0-9: a gain of 10 on the position error), which
the env clips in any case, and fiper's collection would clip and count them.
"""

from __future__ import annotations

import warnings

import numpy as np


class ScriptedExpert:
    """reset(seed) / act(obs, info) -> [dx, dy, dz, fingers]."""

    def __init__(self, env):
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS
        from metaworld.policies import ENV_POLICY_MAP

        names = [name for name, cls in ALL_V3_ENVIRONMENTS.items() if isinstance(env.unwrapped, cls)]
        if not names:
            raise TypeError(f"{type(env.unwrapped).__name__} is no Meta-World v3 env: ScriptedExpert takes one")
        self.task = names[0]
        self.policy = ENV_POLICY_MAP[self.task]()

    def reset(self, seed: int | None = None) -> None:
        pass  # the scripted policies keep no state

    def act(self, obs, info) -> np.ndarray:
        with warnings.catch_warnings():  # "Constant(s) may be too high. Environments clip response to [-1, 1]"
            warnings.simplefilter("ignore", UserWarning)
            action = self.policy.get_action(np.asarray(obs, dtype=np.float64))
        return np.clip(action, -1.0, 1.0).astype(np.float32)
