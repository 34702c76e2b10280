"""The control-loop tests' tiny push-T policy and monitor (a module-scoped fixture each test module imports)."""

from __future__ import annotations

import numpy as np
import pytest

import envs
from calibration import Threshold
from fiper.collection import collect
from fiper.interventions import FallbackContext
from fiper.monitor import FailureMonitor
from fiper.monitor.decision_data import load_decisions
from fiper.monitor.fitting import fit_monitor
from fiper.storage import EpisodeStore
from policies import PolicyConfig, TrainConfig, train_policy

B, MAX_STEPS = 8, 40
SCORES = {"rnd_oe": {"score": "rnd_oe", "target_widths": [16], "predictor_widths": [32, 32], "out_dim": 8,
                     "train": {"lr": 3e-3, "max_epochs": 3}},
          "ace": {"score": "ace", "dims": [0, 1]}}


def make_env(terminate: bool = True):
    return envs.make_env("push_t", max_episode_steps=MAX_STEPS, terminate_on_success=terminate, terminate_on_failure=terminate)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny push-T policy trained briefly on expert demos, and a monitor fitted on its replays."""
    root = tmp_path_factory.mktemp("control")
    env = envs.make_env("push_t")
    store = EpisodeStore.create(root / "demos.zarr")
    collect(env, envs.make_expert(env), store, 3, seed=0, progress=False)
    cfg = PolicyConfig(kind="diffusion", denoiser="mlp", horizon=8, n_action_steps=4, embed_dim=16, encoder_hidden=32,
                       mlp_hidden=64, mlp_layers=2, num_inference_steps=4)
    train_policy(root / "demos.zarr", TrainConfig(policy=cfg, steps=40, batch_size=64, device="cpu", progress=False, cpu_threads=1,
                                                  val_every=1000, checkpoint_every=10**6), root / "policy")
    from policies import load_policy

    policy = load_policy(root / "policy")
    data, identity = load_decisions(EpisodeStore.open(root / "demos.zarr"), policy=policy, num_samples=B)
    monitor = fit_monitor(data, identity, scores=SCORES, windows={"rnd_oe": 2, "ace": 2})
    monitor.calibrate(monitor.score_offline(data.embeddings, data.samples, data.decision_ends), data.decision_ends, delta=0.3)
    return root, policy, monitor


def alarm_from(monitor: FailureMonitor, decision: int) -> FailureMonitor:
    """The same scores with thresholds that never alarm before ``decision`` and always from it on."""
    curve = np.r_[np.full(decision, 1e12), -1e12]
    th = {n: Threshold("time_varying", 0.1, curve, 10, False) for n in monitor.names}
    return FailureMonitor(monitor.scores, monitor.identity, windows=monitor.windows, rule=monitor.rule, thresholds=th)


def context(policy) -> FallbackContext:
    return FallbackContext(action_dim=policy.action_dim, position_dims=[0, 1], agent_pos_key="agent_pos")
