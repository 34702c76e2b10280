"""Shift registry: parsing, severity 0 = nominal, determinism, and what each family changes."""

from __future__ import annotations

import numpy as np
import pytest
from env_helpers import wiggle

import envs
from envs.geometry import segment_point_distance
from envs.shifts.signals import BIAS_M, NOISE_M

MODEL_FIELDS = ("geom_size", "geom_pos", "geom_rgba", "geom_friction", "body_mass", "light_diffuse", "light_pos", "cam_pos", "cam_quat")


def lowdim_trajectory(env, seed: int, n: int = 20) -> np.ndarray:
    obs, _ = env.reset(seed=seed)
    rows = [np.concatenate([obs["agent_pos"], obs["object"]])]
    for a in wiggle(env, n):
        obs, *_ = env.step(a)
        rows.append(np.concatenate([obs["agent_pos"], obs["object"]]))
    return np.stack(rows)


def reset(task: str, shifts, seed: int = 0, **kw):
    env = envs.make_env(task, shifts=shifts, **kw)
    obs, info = env.reset(seed=seed)
    return env, obs, info


def test_unknown_shift_lists_known_ones():
    with pytest.raises(ValueError, match="unknown shift 'gravity'") as err:
        envs.make_env("push_t", shifts=[("gravity", 0.5)])
    for name in ("obstacle", "mass", "friction", "camera", "obs_noise"):
        assert name in str(err.value)


@pytest.mark.parametrize(
    "bad, message",
    [([("mass", 1.5)], "severity must lie in"), ([("mass", -0.1)], "severity must lie in"),
     ([("mass", 0.1), ("mass", 0.2)], "listed twice"), (["mass"], "no severity"), ([{"name": "mass"}], "exactly the keys")],
)
def test_bad_shift_lists(bad, message):
    with pytest.raises(ValueError, match=message):
        envs.parse_shifts(bad)


def test_shift_list_formats_agree():
    want = (("obstacle", 0.7), ("mass", 0.2))
    assert envs.parse_shifts([("obstacle", 0.7), ["mass", 0.2]]) == want
    assert envs.parse_shifts(["obstacle:0.7", "mass:0.2"]) == want
    assert envs.parse_shifts("obstacle:0.7,mass:0.2") == want
    assert envs.parse_shifts([{"name": "obstacle", "severity": 0.7}, {"name": "mass", "severity": 0.2}]) == want
    assert envs.parse_shifts({"obstacle": 0.7, "mass": 0.2}) == want


@pytest.mark.parametrize("name", sorted(envs.SHIFTS))
def test_severity_zero_is_exactly_nominal(name):
    task = "pick_place" if name in ("camera",) else "push_t"
    nominal = envs.make_env(task)
    shifted = envs.make_env(task, shifts=[(name, 0.0)])
    np.testing.assert_array_equal(lowdim_trajectory(nominal, 5), lowdim_trajectory(shifted, 5))
    for f in MODEL_FIELDS:
        np.testing.assert_array_equal(getattr(nominal.model, f), getattr(shifted.model, f), err_msg=f)


@pytest.mark.parametrize("name", ["obstacle", "friction", "push", "obs_noise", "actuation_gain", "object_size"])
def test_shifted_episodes_are_deterministic_given_the_seed(name):
    a = lowdim_trajectory(envs.make_env("push_t", shifts=[(name, 0.8)]), 3)
    b = lowdim_trajectory(envs.make_env("push_t", shifts=[(name, 0.8)]), 3)
    np.testing.assert_array_equal(a, b)


def test_image_only_shifts_leave_lowdim_physics_nominal():
    shifts = [(n, 1.0) for n, cls in envs.SHIFTS.items() if cls.image_only]
    assert {n for n, _ in shifts} == {"lighting", "colors", "camera"}
    np.testing.assert_array_equal(lowdim_trajectory(envs.make_env("sort"), 2), lowdim_trajectory(envs.make_env("sort", shifts=shifts), 2))


def test_init_pose_moves_starts_outside_the_training_range():
    from envs.tasks import pick_place, push_t

    for seed in range(8):
        env, obs, _ = reset("push_t", [("init_pose", 1.0)], seed)
        assert np.abs(obs["object"][:2]).max() > push_t.NOMINAL_BOX
        env, obs, _ = reset("push_t", None, seed)
        assert np.abs(obs["object"][:2]).max() <= push_t.NOMINAL_BOX
        env, _, _ = reset("pick_place", [("init_pose", 1.0)], seed)
        xy, yaw = env.cube_pos()[:2], env.cube_yaw()
        assert not np.all((xy >= pick_place.CUBE_LOW) & (xy <= pick_place.CUBE_HIGH))
        assert abs(yaw) >= pick_place.YAW_RANGE - 1e-9


def test_object_size_and_shape_change_the_geoms():
    base = envs.make_env("push_t")
    ids = [base.model.geom(g).id for g in base.object_geoms]
    nominal = base.model.geom_size[ids]
    env, _, _ = reset("push_t", [("object_size", 1.0)])
    ratio = env.model.geom_size[ids] / nominal
    assert np.allclose(ratio, 1.4) or np.allclose(ratio, 0.6)
    env, _, _ = reset("push_t", [("object_shape", 1.0)])
    ratio = env.model.geom_size[ids, :2] / nominal[:, :2]
    assert sorted(ratio[0]) == pytest.approx([1 / 1.6, 1.6])


def test_mass_and_friction_scale_the_model():
    base = envs.make_env("pick_place")
    env, _, _ = reset("pick_place", [("mass", 1.0)])
    cube = base.model.body("cube").id
    assert env.model.body_mass[cube] == pytest.approx(5 * base.model.body_mass[cube])
    env, _, _ = reset("pick_place", [("friction", 1.0)])
    ratio = env.model.geom_friction[:, 0] / base.model.geom_friction[:, 0]
    assert np.allclose(ratio, 4.0) or np.allclose(ratio, 0.25)


@pytest.mark.parametrize("task", ["push_t", "sort", "pick_place"])
def test_obstacle_sits_in_the_path_and_clear_of_the_start(task):
    near, far = [], []
    for seed in range(6):
        for sev, out in ((1.0, near), (0.2, far)):
            env, _, _ = reset(task, [("obstacle", sev)], seed)
            g = env.obstacle_geom
            assert g >= 0 and env.model.geom_size[g, 0] == pytest.approx(0.012 + 0.018 * sev)
            params = env.active_shifts[0].params
            p0, p1 = (np.array(p) for p in params["segment"])
            out.append(segment_point_distance(p0, p1, env.model.geom_pos[g, :2]))
            assert not env.obstacle_touched() and not env.labels.failure
    assert np.median(near) < 0.05  # within the object's swept corridor at full severity
    assert np.min(far) > np.median(near) + 0.03  # off to the side at low severity
    assert np.all(np.isfinite(near))


def test_obstacle_is_tall_in_pick_place():
    env, _, _ = reset("pick_place", [("obstacle", 1.0)])
    assert env.model.geom_size[env.obstacle_geom, 1] * 2 == pytest.approx(0.2)


def test_push_kicks_the_object_at_its_step():
    nominal = lowdim_trajectory(envs.make_env("sort"), 4, n=70)
    env = envs.make_env("sort", shifts=[("push", 1.0)], terminate_on_failure=False)
    pushed = lowdim_trajectory(env, 4, n=70)
    k = env.active_shifts[0].params["step"]
    assert 30 <= k <= 70
    np.testing.assert_array_equal(nominal[: k + 1], pushed[: k + 1])  # rows 0..k precede the kick
    assert np.abs(pushed[k + 1, 2:] - nominal[k + 1, 2:]).max() > 0.02  # a cube moved by > 2 cm in 0.1 s


def test_obs_noise_has_the_stated_scale():
    env, obs, _ = reset("push_t", [("obs_noise", 1.0)])
    errs = []
    for a in wiggle(env, 60):
        obs, *_ = env.step(a)
        errs.append(obs["object"] - env._object_obs())
    errs = np.stack(errs)
    assert np.std(errs) == pytest.approx(NOISE_M, rel=0.2)
    assert abs(np.mean(errs)) < 0.005


def test_obs_bias_is_constant_and_bounded():
    env, obs, _ = reset("sort", [("obs_bias", 1.0)])
    first = obs["object"] - env._object_obs()
    for a in wiggle(env, 10):
        obs, *_ = env.step(a)
        np.testing.assert_allclose(obs["object"] - env._object_obs(), first, atol=1e-6)
    assert 0 < np.abs(first).max() <= BIAS_M


def test_actuation_gain_scales_the_commanded_displacement():
    env, _, _ = reset("push_t", [("actuation_gain", 1.0)])
    gain = env.active_shifts[0].params["gain"]
    assert gain == pytest.approx(0.4) or gain == pytest.approx(1.6)
    start = env.agent_position()
    env.step(start + [0.05, 0.0])
    assert env.data.ctrl[0] - start[0] == pytest.approx(gain * 0.05)


def test_actuation_delay_applies_old_actions():
    env, _, _ = reset("pick_place", [("actuation_delay", 1.0)])
    assert env.active_shifts[0].params["delay_steps"] == 3
    hold = env.hold_action()
    actions = wiggle(env, 6)
    for t, a in enumerate(actions):
        env.step(a)
        expect = hold if t < 3 else actions[t - 3]
        np.testing.assert_allclose(env.data.ctrl[:3], expect[:3])


def test_visual_shifts_change_rendering_properties():
    base = envs.make_env("pick_place").model
    env, _, _ = reset("pick_place", [("lighting", 1.0), ("colors", 1.0), ("camera", 1.0)])
    m = env.model
    assert np.abs(m.light_diffuse - base.light_diffuse).max() > 0.05
    table = base.geom("table").id
    assert np.abs(m.geom_rgba[table] - base.geom_rgba[table]).max() > 0.05
    assert np.linalg.norm(m.cam_pos[0] - base.cam_pos[0]) == pytest.approx(0.12)


def test_composed_shifts_act_independently():
    alone, _, _ = reset("push_t", [("obstacle", 0.6)], seed=9)
    both, _, info = reset("push_t", [("mass", 1.0), ("obstacle", 0.6)], seed=9)
    assert info["shift"] == "mass+obstacle" and info["severity"] == 1.0
    np.testing.assert_array_equal(alone.model.geom_pos[alone.obstacle_geom], both.model.geom_pos[both.obstacle_geom])
    block = both.model.body("block").id
    assert both.model.body_mass[block] == pytest.approx(5 * alone.model.body_mass[block])


def test_shifts_can_change_per_episode_through_reset_options():
    env = envs.make_env("sort")
    _, info = env.reset(seed=1, options={"shifts": [("obstacle", 1.0)]})
    assert info["shift"] == "obstacle" and env.obstacle_geom >= 0
    _, info = env.reset(seed=1, options={"shifts": []})
    assert info["shift"] == "none" and env.obstacle_geom == -1
