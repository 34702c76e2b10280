"""Sensing and actuation shift families: observation noise and bias, actuation gain and delay."""

from __future__ import annotations

from collections import deque

import numpy as np

from envs.shifts.base import Shift, register_shift

NOISE_M = 0.015  # observation noise std (metres, or unitless features) at severity 1
BIAS_M = 0.03  # largest per-feature observation offset at severity 1
NOISE_PX = 25.0  # image noise std (grey levels) at severity 1
BIAS_PX = 40.0  # largest per-channel image offset at severity 1


def _noisy_image(img: np.ndarray, delta: np.ndarray) -> np.ndarray:
    return np.clip(img.astype(np.float32) + delta, 0, 255).astype(np.uint8)


@register_shift
class ObsNoise(Shift):
    name = "obs_noise"
    description = (f"white Gaussian noise on every observation: std {NOISE_M}*severity on low-dim "
                   f"features, {NOISE_PX:g}*severity grey levels per image pixel")
    expected = "graded"

    def transform_obs(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = {}
        for key, val in obs.items():
            if val.dtype == np.uint8:
                out[key] = _noisy_image(val, self.rng.normal(0.0, NOISE_PX * self.severity, val.shape))
            else:
                out[key] = (val + self.rng.normal(0.0, NOISE_M * self.severity, val.shape)).astype(val.dtype)
        return out


@register_shift
class ObsBias(Shift):
    name = "obs_bias"
    description = (f"a constant offset per episode: uniform in +/-{BIAS_M}*severity per low-dim "
                   f"feature, +/-{BIAS_PX:g}*severity grey levels per image channel")
    expected = "graded"

    def on_reset(self) -> None:
        self.offsets: dict[str, np.ndarray] = {}

    def transform_obs(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not self.offsets:  # drawn once per episode, on the first observation
            for key, val in obs.items():
                scale, shape = (BIAS_PX, (1, 1, val.shape[-1])) if val.dtype == np.uint8 else (BIAS_M, val.shape)
                self.offsets[key] = self.rng.uniform(-1, 1, shape) * scale * self.severity
                self.params[key] = self.offsets[key].ravel().tolist()
        out = {}
        for key, val in obs.items():
            bias = self.offsets[key]
            out[key] = _noisy_image(val, bias) if val.dtype == np.uint8 else (val + bias).astype(val.dtype)
        return out


@register_shift
class ActuationGain(Shift):
    name = "actuation_gain"
    description = ("commanded displacement of the end-effector scaled by 1 +/- 0.6*severity "
                   "(sluggish or overshooting, chosen per seed); the gripper command is untouched")
    expected = "graded"

    def on_reset(self) -> None:
        self.gain = 1.0 + float(self.rng.choice([-1.0, 1.0])) * 0.6 * self.severity
        self.params["gain"] = self.gain

    def transform_action(self, action: np.ndarray) -> np.ndarray:
        k = self.env.position_dims
        out = action.copy()
        current = self.env.agent_position()
        out[:k] = current + self.gain * (action[:k] - current)
        return out


@register_shift
class ActuationDelay(Shift):
    name = "actuation_delay"
    description = "actions take effect round(3*severity) control steps late (up to 0.3 s)"
    expected = "graded"

    def on_reset(self) -> None:
        self.delay = int(round(3 * self.severity))
        self.queue = deque([self.env.hold_action()] * self.delay)
        self.params["delay_steps"] = self.delay

    def transform_action(self, action: np.ndarray) -> np.ndarray:
        self.queue.append(action.copy())
        return self.queue.popleft()
