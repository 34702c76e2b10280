"""A scripted InvertedPendulum-v5 expert: a linear state feedback on the cart and the pole.

It reads the true state through ``env.unwrapped.data`` (so observation noise does not fool it) and is
called by ``launch.collect expert=examples.gym_pendulum.expert:BalanceExpert`` as ``BalanceExpert(env)``.
Per episode it scales its gains a little, so the demonstrations are not one trajectory per start.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

GAINS = np.array([1.0, 12.0, 1.5, 1.5])  # force per (cart position, pole angle, cart velocity, pole angular velocity)


class BalanceExpert:
    """reset(seed) / act(obs, info) -> the force on the cart, clipped to the actuator's range."""

    def __init__(self, env):
        self.env = env.unwrapped
        model = getattr(self.env, "model", None)
        if model is None or model.nq != 2 or "pole" not in {model.body(i).name for i in range(model.nbody)}:
            raise ValueError(f"BalanceExpert drives gymnasium's InvertedPendulum-v5, and this env ({type(self.env).__name__}) is not "
                             "one: build it with examples.gym_pendulum.envs:make_pendulum or a shift factory there")
        self.low, self.high = model.actuator_ctrlrange[0]
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        self.gains = GAINS * float(np.random.default_rng(seed).uniform(0.9, 1.1))

    def act(self, obs, info) -> np.ndarray:
        state = np.concatenate([self.env.data.qpos, self.env.data.qvel])
        return np.clip([float(self.gains @ state)], self.low, self.high).astype(np.float32)


class BalanceController:
    """The fallback a monitor hands the cart to on an alarm (``launch.act``'s ``controller`` response): the same linear
    feedback, on the observation the policy was given (a deployed robot has no privileged state), clipped to the
    actuator's ±3 N. Holding still is no safe stop for a force-driven pole: a zero force lets it fall."""

    def __init__(self, gains=GAINS, limit: float = 3.0):
        self.gains, self.limit = np.asarray(gains, dtype=np.float64), float(limit)

    def __call__(self, obs) -> np.ndarray:
        state = np.asarray(obs["obs"] if isinstance(obs, Mapping) else obs, dtype=np.float64).reshape(-1)
        return np.clip([float(self.gains @ state)], -self.limit, self.limit).astype(np.float32)


balance_controller = BalanceController()
