"""robosuite's Lift example: without robosuite (the suite does not install it), the factory's message, severities checked
before an env is built, the expert's phases on constructed observations and the pipeline config composing; with
robosuite (pip install robosuite==1.5.2 'mujoco>=3.3,<3.10' h5py), the env's seeds, labels and shifts, and the documented
pipeline command at a tiny size."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from example_pipeline import compose_example, shift_factories, run_example_pipeline

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # the example is imported as examples.robosuite_lift, as from the repository root

from examples.robosuite_lift import envs as lift  # noqa: E402
from examples.robosuite_lift.expert import ABOVE, CLOSE_STEPS, CLOSED, OPEN, LiftExpert  # noqa: E402

SHIFTS = (lift.obs_noise, lift.weak_arm, lift.slippery, lift.wide_start)


def test_the_factory_without_robosuite_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "robosuite", None)  # as without it, also where it is installed
    with pytest.raises(ModuleNotFoundError, match=r"robosuite's Lift needs robosuite: pip install robosuite==1.5.2 'mujoco>=3.3,<3.10'"):
        lift.make_lift()


@pytest.mark.parametrize("factory", SHIFTS)
def test_every_shift_refuses_a_severity_outside_0_1_before_an_env_is_built(factory):
    with pytest.raises(ValueError, match=rf"{factory.__name__}: severity must be a number in \[0, 1\], got 2.0"):
        factory(severity=2.0)


def _obs(hand, cube):
    return {"robot0_eef_pos": np.asarray(hand, float), "cube_pos": np.asarray(cube, float)}


def test_the_expert_goes_above_the_cube_down_closes_and_lifts():
    expert = LiftExpert()
    cube = np.array([0.01, -0.02, 0.83])
    far = expert.act(_obs(cube + [0.0, 0.0, 0.2], cube), {})
    assert expert.strategy == "above" and far.shape == (7,) and far.dtype == np.float32
    assert far.tolist() == pytest.approx([0.0, 0.0, -1.0, 0.0, 0.0, 0.0, OPEN])  # 14 cm too high: down, clipped
    expert.act(_obs(cube + [0.005, 0.0, ABOVE], cube), {})
    assert expert.strategy == "down"
    closing = [expert.act(_obs(cube + [0.0, 0.0, 0.005], cube), {}) for _ in range(CLOSE_STEPS + 1)]
    assert [a[6] for a in closing] == [CLOSED] * (CLOSE_STEPS + 1) and expert.strategy == "lift"
    up = expert.act(_obs(cube + [0.0, 0.0, 0.005], cube), {})
    assert up[2] == 1.0 and up[6] == CLOSED  # 12 cm up from the grasp, clipped
    expert.reset(1)
    assert expert.strategy == "above"


def test_the_pipeline_config_composes_with_its_cells_factories_and_outcome_sweep():
    cfg = compose_example("robosuite_lift", "pipeline_robosuite_lift")
    env = compose_example("robosuite_lift", "env/lift")["env"]
    assert cfg.train.checkpoint is None and cfg.collect.expert == "examples.robosuite_lift.expert:LiftExpert"
    assert env.factory == "examples.robosuite_lift.envs:make_lift" and "control_period_s" not in env  # 1 / control_freq
    assert shift_factories(cfg, lift) == [f.__name__ for f in SHIFTS]
    assert list(cfg.act.responses) == ["hold", "retreat", "return_retry"]
    assert {"context.position_dims=[0,1,2]", "context.gripper_dims=[6]", "context.action_mode=velocity"} <= set(cfg.act.overrides)


@pytest.fixture
def robosuite():
    return pytest.importorskip("robosuite", reason="the example's env needs robosuite (README.md)")


class LetGo(LiftExpert):
    """The expert, opening the fingers once the cube is up: a dropped cube."""

    def act(self, obs, info):
        action = super().act(obs, info)
        if info.get("success"):
            self.phase = "dropping"
        if self.phase == "dropping":
            action[6] = OPEN
        return action


def test_a_seed_fixes_the_episode_the_expert_lifts_and_holds_and_a_dropped_cube_is_a_physical_failure(robosuite):
    from fiper.collection import run_episode
    from fiper.control.period import control_period_s
    from fiper.control.seeded_resets import check_seeded_resets

    env = lift.make_lift()
    assert control_period_s(env) == pytest.approx(0.05) and env.action_space.shape == (7,)
    episodes = [run_episode(env, LiftExpert(env), seed) for seed in range(3)]
    assert all(e.success and e.length == lift.HORIZON for e in episodes)  # held up to the time limit
    dropped = run_episode(env, LetGo(env), 0)
    assert not dropped.success and dropped.failure_reason == "dropped" and dropped.failure_step == dropped.length - 1 < lift.HORIZON - 1
    check_seeded_resets(lambda shift, severity: lift.make_lift(), [("none", 0.0)], "test", expert=LiftExpert)
    nominal = env.reset(seed=5)[0]
    for shift in SHIFTS:
        start = shift(severity=0.0).reset(seed=5)[0]
        assert all(np.array_equal(start[k], nominal[k]) for k in nominal), shift.__name__


@pytest.mark.slow
def test_the_documented_pipeline_command_runs_every_stage(robosuite, tmp_path):
    """python -m launch.pipeline --config-dir examples/robosuite_lift/conf --config-name pipeline_robosuite_lift, tiny."""
    run_dir = tmp_path / "run"
    done = run_example_pipeline("robosuite_lift", run_dir, cells="[[none,[0.0]],[weak_arm,[1.0]],[slippery,[1.0]]]",
                                demos=30, steps=3000, seeds_per_cell=2,
                                # the default policy and batch (a tiny policy, or 2000 steps of 64, lifts in none of 8 rollouts)
                                extra=("train.batch_size=256",
                                       "train.overrides=['train.val_every=1000','train.checkpoint_every=1000000','train.progress=false']",
                                       "act.cells=[[none,[0.0]],[weak_arm,[1.0]]]", "act.seeds_per_cell=1"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "are the settings shipped for 'pick_place'" not in done.stdout  # the config states its own ACE entries

    from fiper.storage import EpisodeStore

    demos = EpisodeStore.open(run_dir / "demos.zarr")
    assert demos.attrs["task"] == "Lift" and demos.meta("success").all() and demos.attrs["control_period_s"] == pytest.approx(0.05)
    assert set(demos.data_keys) == {"action", *lift.OBS_KEYS}
    stress = EpisodeStore.open(run_dir / "stress.zarr")
    assert sorted(set(stress.meta("shift").astype(str))) == ["none", "slippery", "weak_arm"]
    assert set(stress.meta("failure_reason").astype(str)) <= {"", "timeout", "dropped"}
    metrics = json.loads((run_dir / "evaluation" / "metrics.json").read_text())
    assert metrics["tasks"]["Lift"]["control_period_s"] == pytest.approx(0.05)
    outcome = json.loads((run_dir / "act" / "outcome.json").read_text())["overall"]
    assert set(outcome) == {"hold", "retreat", "return_retry"} and all(r["episodes"] == 2 for r in outcome.values())


def test_the_expert_reads_the_cube_from_robomimics_object_state_too():
    cube = np.array([0.01, -0.02, 0.83])
    keyed = LiftExpert().act(_obs(cube + [0.0, 0.0, 0.2], cube), {})
    state = np.concatenate([cube, [0.0, 0.0, 0.0, 1.0], -0.2 * np.array([0.0, 0.0, 1.0])])
    robomimic = LiftExpert().act({"robot0_eef_pos": cube + [0.0, 0.0, 0.2], "object-state": state}, {})
    assert np.array_equal(keyed, robomimic)


def test_the_env_observes_robomimics_keys_when_asked_and_the_expert_lifts_with_them(robosuite):
    from fiper.collection import run_episode

    env = lift.make_lift(obs_keys=["robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos", "object-state"])
    obs = env.reset(seed=0)[0]
    assert set(obs) == {"robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos", "object-state"} and obs["object-state"].shape == (10,)
    assert run_episode(env, LiftExpert(env), 0).success
