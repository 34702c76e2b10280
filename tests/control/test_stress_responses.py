"""launch.stress with a response: the recorded store shows what the response did, the keep-out steer binds each
episode's obstacle, the control period comes from the env, and the action layout from the task."""

from __future__ import annotations

import numpy as np
import pytest

import envs
from fiper.storage import EpisodeStore
from loop_setup import MAX_STEPS, alarm_from, make_env
from loop_setup import setup as control_setup  # noqa: F401  (module fixture: policy dir + fitted monitor)


@pytest.fixture(scope="module")
def setup(control_setup):
    return control_setup


def test_stress_sweep_with_a_hold_response_holds_after_the_alarm(setup, tmp_path):
    """launch.stress response=hold: the recorded store shows the fallback from the first alarm on."""
    from hydra import compose, initialize_config_dir

    from fiper.monitor import save_monitor
    from launch import stress

    root, policy, monitor = setup
    save_monitor(alarm_from(monitor, 2), tmp_path / "monitor")
    overrides = [f"policy_dir={root / 'policy'}", f"monitor_dir={tmp_path / 'monitor'}", f"out={tmp_path / 'r.zarr'}",
                 "response=hold", "cells=[[none,[0.0]]]", "seeds.count=1", "progress=false",
                 f"+env.kwargs.max_episode_steps={MAX_STEPS}", "+env.kwargs.terminate_on_failure=false"]
    with initialize_config_dir(config_dir=str(stress.__file__).rsplit("/", 1)[0] + "/conf", version_base=None):
        cfg = compose(config_name="stress", overrides=overrides)
    stress.run(cfg)
    store = EpisodeStore.open(tmp_path / "r.zarr")
    dec = store.episode_decisions(0)
    acted = dec["intervention"] != "none"
    assert store.attrs["response_type"] == "GradedResponse"
    assert store.attrs["control_period_s"] == pytest.approx(make_env().unwrapped.dt) == pytest.approx(0.1)  # from the env
    assert not acted[:2].any() and acted[2:].all() and set(dec["intervention"][acted]) == {"fallback:hold"}
    start = int(dec["env_step"][2])
    held = store.episode(0)["action"][start:]
    assert len(held) > 1 and np.ptp(held, axis=0).max() == 0.0  # one latched target, every step after the alarm
    assert int(store.meta("first_intervention_step")[0]) == start


def test_stress_refuses_a_configured_control_period_the_env_contradicts(setup, tmp_path):
    """+env.control_period_s= that disagrees with the env's dt is refused before anything is recorded."""
    from hydra import compose, initialize_config_dir

    from launch import stress

    root, _, _ = setup
    overrides = [f"policy_dir={root / 'policy'}", f"out={tmp_path / 'r.zarr'}", "cells=[[none,[0.0]]]", "seeds.count=1",
                 "progress=false", "+env.control_period_s=0.0125"]
    with initialize_config_dir(config_dir=str(stress.__file__).rsplit("/", 1)[0] + "/conf", version_base=None):
        cfg = compose(config_name="stress", overrides=overrides)
    with pytest.raises(ValueError, match=r"env.control_period_s=0.0125 s but push_t declares PushTEnv.dt = 0.1 s"):
        stress.run(cfg)
    assert not (tmp_path / "r.zarr").exists()


def test_stress_sweep_steers_around_each_episodes_obstacle(setup, tmp_path):
    """launch.stress response=steer_keep_out: the keep-out reward is bound to every episode's own
    obstacle (an unbound one raises), steering runs for max_steer_decisions, then the hold latches."""
    from hydra import compose, initialize_config_dir

    from fiper.monitor import save_monitor
    from launch import stress

    root, policy, monitor = setup
    save_monitor(alarm_from(monitor, 2), tmp_path / "monitor")
    overrides = [f"policy_dir={root / 'policy'}", f"monitor_dir={tmp_path / 'monitor'}", f"out={tmp_path / 'r.zarr'}",
                 "response=steer_keep_out", "response.steering.num_particles=8", "cells=[[obstacle,[1.0]]]",
                 "seeds.count=2", "progress=false", f"+env.kwargs.max_episode_steps={MAX_STEPS}",
                 "+env.kwargs.terminate_on_failure=false"]
    with initialize_config_dir(config_dir=str(stress.__file__).rsplit("/", 1)[0] + "/conf", version_base=None):
        cfg = compose(config_name="stress", overrides=overrides)
    stress.run(cfg)
    store = EpisodeStore.open(tmp_path / "r.zarr")
    for ep in range(2):
        labels = list(store.episode_decisions(ep)["intervention"])
        assert labels[:2] == ["none", "none"] and labels[2:5] == ["steer"] * 3
        assert set(labels[5:]) == {"fallback:hold"}


def test_stress_context_comes_from_the_task_and_a_response_needs_a_monitor(setup):
    from omegaconf import OmegaConf

    from launch.stress import action_context, build_response

    pick = envs.make_env("pick_place")
    ctx = action_context({"position_dims": None, "gripper_dims": None, "action_mode": "position"}, 4, pick)
    assert list(ctx.position_dims) == [0, 1, 2] and list(ctx.gripper_dims) == [3]
    ctx = action_context({"position_dims": [0, 1], "gripper_dims": None}, 2, object())  # given explicitly: no env needed
    assert list(ctx.position_dims) == [0, 1]
    with pytest.raises(ValueError, match="context.position_dims"):
        action_context({}, 2, object())
    cfg = OmegaConf.create({"response": {"fallback": {"name": "hold"}}})
    with pytest.raises(ValueError, match="monitor_dir"):
        build_response(cfg, None, setup[1], make_env)


def test_stress_gives_a_velocity_steer_its_layout_and_period_and_refuses_one_without_a_measured_position(setup):
    from omegaconf import OmegaConf

    from launch.stress import build_response

    _, policy, monitor = setup
    steer = {"steering": {"reward": {"name": "keep_out", "center": [0.0, 0.0], "radius": 0.05}, "velocity_actions": True}}
    context = {"position_dims": [0, 1], "gripper_dims": None, "action_mode": "velocity", "agent_pos_key": None,
               "agent_pos_dims": None}
    env = make_env()
    try:
        response, ctx = build_response(OmegaConf.create({"response": steer, "context": context}), monitor, policy, env, 0.1)
        assert response.fallback is None and ctx.control_period_s == 0.1 and ctx.agent_pos_key == "agent_pos"
        missing = OmegaConf.create({"response": steer, "context": {**context, "agent_pos_key": "nope"}})
        with pytest.raises(ValueError) as err:
            build_response(missing, monitor, policy, env, 0.1)
    finally:
        env.close()
    assert str(err.value) == (
        "response.steering.velocity_actions=true integrates the velocities from the robot's measured position, but the "
        "observation has no key 'nope' (it has {'agent_pos': (2,), 'object': (4,), 'obstacle': (4,)}): name the key that "
        "measures the positions the action entries drive, context.agent_pos_key=<key> (context.agent_pos_dims=[...] picking "
        "its entries, in the order of context.position_dims)")
