"""gymnasium's Reacher-v5, an env written without fiper (flat observations, no failure labels), through the
bring-your-own-env path: the example's expert and shift factories, the default labels, the checks on bad
input, and every stage of launch.pipeline run by its documented command at a tiny size."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from example_pipeline import run_example_pipeline
from hydra import compose, initialize_config_dir

pytest.importorskip("imageio", reason="gymnasium's MuJoCo envs import imageio (pip install 'fiper[image]')")

from fiper.collection import collect, run_episode
from fiper.env_factory import env_task_name, make_env_from_config  # noqa: E402
from fiper.storage import EpisodeStore  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "launch" / "conf"
sys.path.insert(0, str(ROOT))  # the example is imported as examples.gym_reacher, as from the repository root

from examples.gym_reacher import envs as reacher  # noqa: E402
from examples.gym_reacher.expert import ReachExpert  # noqa: E402


def test_the_expert_reaches_and_severity_zero_is_the_nominal_task():
    env = reacher.make_reacher()
    episodes = [run_episode(env, ReachExpert(env), seed) for seed in range(20)]
    assert sum(e.success for e in episodes) >= 17  # 90 % over seeds 0-49 (README)
    assert all(e.failure_step == -1 and e.failure_reason == "" for e in episodes if e.success)
    assert env_task_name(env) == "Reacher-v5" and env.unwrapped.dt == pytest.approx(0.02)
    nominal = env.reset(seed=3)[0]
    for shift in (reacher.arm_start, reacher.joint_damping, reacher.obs_noise):
        np.testing.assert_array_equal(shift(severity=0.0).reset(seed=3)[0], nominal)
    assert not np.allclose(reacher.arm_start(severity=1.0).reset(seed=3)[0][:4], nominal[:4])
    with pytest.raises(ValueError, match=r"obs_noise: severity must be a number in \[0, 1\], got 2.0"):
        reacher.obs_noise(severity=2.0)


def test_the_control_period_and_task_come_from_gymnasiums_own_envs():
    from fiper.control.period import control_period_s

    pusher = gym.make("Pusher-v5")  # frame_skip 5 at a 0.01 s timestep
    assert control_period_s(pusher) == pytest.approx(0.05) and env_task_name(pusher) == "Pusher-v5"
    assert control_period_s(reacher.make_reacher()) == pytest.approx(0.02)
    assert env_task_name(pusher, "my_task") == "my_task"  # env.name, when the config gives one


def test_launch_collect_runs_the_users_expert_and_names_the_task_from_the_env(tmp_path):
    from launch.collect import run

    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        cfg = compose("collect", ["env.factory=examples.gym_reacher.envs:make_reacher", "env.name=null", "env.obs_mode=null",
                                  "expert=examples.gym_reacher.expert:ReachExpert", "n_episodes=2", f"out={tmp_path / 'demos.zarr'}",
                                  "progress=false"])
        run(cfg)
        store = EpisodeStore.open(tmp_path / "demos.zarr")
        assert store.n_episodes == 2 and store.meta("success").all() and store.read_data("obs").shape[1:] == (10,)
        assert (store.attrs["task"], store.attrs["env"]["gym_id"]) == ("Reacher-v5", "Reacher-v5")
        assert store.attrs["control_period_s"] == pytest.approx(0.02)
        wrong = compose("collect", ["env.factory=examples.gym_reacher.envs:make_reacher", "env.name=null", "env.obs_mode=null",
                                    "expert=examples.gym_reacher.expert:ReachExpert", "n_episodes=1", f"out={tmp_path / 'x.zarr'}",
                                    "++env.control_period_s=0.05", "progress=false"])
        with pytest.raises(ValueError, match=r"env.control_period_s=0.05 s but Reacher-v5 declares ReacherEnv.dt = 0.02 s"):
            run(wrong)
        assert not (tmp_path / "x.zarr").exists()
        default_expert = compose("collect", ["env.factory=examples.gym_reacher.envs:make_reacher", "env.name=null", "env.obs_mode=null",
                                             "n_episodes=1", f"out={tmp_path / 'y.zarr'}", "progress=false"])
        with pytest.raises(ValueError, match="ReacherEnv is not a fiper task; pass expert=module:function for your own env"):
            run(default_expert)
        not_an_expert = compose("collect", ["env.factory=examples.gym_reacher.envs:make_reacher", "env.name=null", "env.obs_mode=null",
                                            "expert=examples.gym_reacher.envs:ReachSuccess", "n_episodes=1", f"out={tmp_path / 'z.zarr'}"])
        with pytest.raises(TypeError, match=r"expert=examples.gym_reacher.envs:ReachSuccess returned ReachSuccess, which has no act\(\); "
                                            r"an expert is called as expert\(env\)"):
            run(not_an_expert)
        assert not any((tmp_path / name).exists() for name in ("y.zarr", "z.zarr"))


def test_an_env_without_labels_gets_the_documented_defaults():
    """Truncation is a timeout at the last step; termination without the env saying success is a failure at that step."""
    raw = gym.make("Reacher-v5", max_episode_steps=5)  # never terminates, says nothing of success
    episode = run_episode(raw, ReachExpert(raw), seed=0)
    assert (episode.success, episode.failure_step, episode.failure_reason, episode.length) == (False, 4, "timeout", 5)

    class EndsAtStep3(gym.Wrapper):
        def step(self, action):
            obs, reward, _, truncated, info = self.env.step(action)
            self.t = getattr(self, "t", 0) + 1
            return obs, reward, self.t == 3, truncated, info

    ended = run_episode(EndsAtStep3(raw), ReachExpert(raw), seed=0)
    assert (ended.success, ended.failure_step, ended.failure_reason, ended.length) == (False, 2, "terminated", 3)


def test_a_bad_expert_action_is_refused_naming_the_step_and_the_fix(tmp_path):
    env = reacher.make_reacher()

    class Wrong:
        def __init__(self, action):
            self.action = action

        def reset(self, seed=None):
            pass

        def act(self, obs, info):
            return self.action

    store = EpisodeStore.create(tmp_path / "demos.zarr")
    with pytest.raises(ValueError, match=r"action at step 0 of seed 0 has shape \(3,\), the env's action space \(2,\)"):
        collect(env, Wrong(np.zeros(3)), store, 1, progress=False)
    with pytest.raises(ValueError, match=r"action at step 0 of seed 0 is not finite \(\[nan, 0.0\]\)"):
        collect(env, Wrong(np.array([np.nan, 0.0])), store, 1, progress=False)
    with pytest.raises(ValueError, match="has no MuJoCo bodies 'fingertip' and 'target'"):
        ReachExpert(gym.make("CartPole-v1"))
    assert store.n_episodes == 0
    # an action far outside the space (a wrong unit, or Meta-World's unclipped scripted policies) is clipped to it, as
    # the env executes it, and counted; jitter at a bound (under 1 % of the range of 2) is stored as commanded
    far = collect(env, Wrong(np.array([0.0, 5.0])), store, 1, progress=False)
    near = collect(env, Wrong(np.array([-1.015, 1.019])), store, 1, progress=False)
    assert (far.clipped_steps, far.clip_excess, near.clipped_steps, near.clip_excess) == (50, 2.0, 0, 0.0)
    assert "50 of the expert's 50 actions (100%) left the env's action space (by up to 200% of an entry's range)" in str(far)
    assert "most of them, so they likely come in other units than the env takes" in str(far)
    # or the env takes more than it declares: the fix is then in the factory, not the expert
    assert "declare the real bounds in the env factory (env.unwrapped.action_space = gymnasium.spaces.Box(low, high))" in str(far)
    assert np.allclose(store.episode(0, ["action"])["action"], [0.0, 1.0])
    assert np.allclose(store.episode(1, ["action"])["action"], [-1.015, 1.019])


def test_stress_checks_the_shift_factories_before_building_an_env():
    from launch.stress import env_builder

    env_cfg = {"factory": "examples.gym_reacher.envs:make_reacher", "kwargs": {}}
    factories = {"arm_start": "examples.gym_reacher.envs:arm_start"}
    make_env = env_builder(env_cfg, factories, ["none", "arm_start"])
    assert isinstance(make_env("arm_start", 0.5).unwrapped, type(reacher.make_reacher().unwrapped))
    with pytest.raises(ValueError, match=r"cells name shifts \['obs_noise'\] but env.factory=examples.gym_reacher.envs:make_reacher "
                                         r"takes no 'shifts' parameter.*factories.obs_noise=my_pkg.envs:make_obs_noise"):
        env_builder(env_cfg, factories, ["none", "obs_noise"])
    with pytest.raises(ValueError, match=r"factories.arm_start=examples.gym_reacher.envs:make_reacher .* takes no 'severity' parameter"):
        env_builder(env_cfg, {"arm_start": "examples.gym_reacher.envs:make_reacher"}, ["arm_start"])
    with pytest.raises(ValueError, match="module 'examples.gym_reacher.envs' has no attribute 'arm_strat'"):
        env_builder(env_cfg, {"arm_start": "examples.gym_reacher.envs:arm_strat"}, ["arm_start"])
    with pytest.raises(TypeError, match=r"factories.arm_start=examples.gym_reacher.envs:check_severity returned float, which is not a "
                                        r"gymnasium env \(it has no reset, step, action_space, observation_space\)"):
        env_builder(env_cfg, {"arm_start": "examples.gym_reacher.envs:check_severity"}, ["arm_start"])("arm_start", 0.5)
    with pytest.raises(TypeError, match=r"env.factory=examples.gym_reacher.envs:check_severity returned float"):
        make_env_from_config({"factory": "examples.gym_reacher.envs:check_severity", "kwargs": {"severity": 0.5, "shift": "x"}})


def test_env_overrides_items_holding_equals_or_colons_are_quoted_or_refused():
    from launch.pipeline import check_list_quoting, validate_all

    check_list_quoting(["env_overrides=['env.factory=examples.gym_reacher.envs:make_reacher','env.name=null']"])  # quoted: read
    with pytest.raises(SystemExit, match=r"""quote each one .*"env_overrides=\['env.factory=examples.gym_reacher.envs:make_reacher','env.name=null'\]\""""):
        check_list_quoting(["env_overrides=[env.factory=examples.gym_reacher.envs:make_reacher,env.name=null]"])
    with pytest.raises(SystemExit, match=r"""act.overrides: .*"act.overrides=\['response_configs.steer.steering.guide_scale=40.0'\]\""""):
        check_list_quoting(["act.overrides=[response_configs.steer.steering.guide_scale=40.0]"])
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        cfg = compose("pipeline", ["env_overrides=['env.factory=examples.gym_reacher.envs:make_reacher','env.name=null',"
                                   "'env.obs_mode=null','++env.kwargs.success_radius=0.03']", "train.checkpoint=null"])
        stress = compose("stress", [*cfg.env_overrides, "policy_dir=p", "out=o"])
        assert stress.env.factory == "examples.gym_reacher.envs:make_reacher" and stress.env.kwargs.success_radius == 0.03
        documented = compose("pipeline", [  # docs/envs.md: the example's run without its config file
            "task=push_t", "train.checkpoint=null", "collect.expert=examples.gym_reacher.expert:ReachExpert",
            "env_overrides=['env.factory=examples.gym_reacher.envs:make_reacher','env.name=null','env.obs_mode=null']",
            "rollouts.cells=[[none,[0.0]],[arm_start,[1.0]]]", "+rollouts.factories.arm_start=examples.gym_reacher.envs:arm_start",
            "monitor.scores.ace.dims=[0,1]", "++act=null"])
        validate_all(documented, Path("unused"))
        bad = compose("pipeline", ["env_overrides=[env.obs_mode:null]"])
        with pytest.raises(ValueError, match=r"env_overrides.*element 'env.obs_mode:null' is not"):
            validate_all(bad, Path("unused"))


REACHER_OVERRIDES = ["env_overrides=['env.factory=examples.gym_reacher.envs:make_reacher','env.name=null','env.obs_mode=null']",
                     "collect.expert=examples.gym_reacher.expert:ReachExpert"]


def test_the_pipeline_refuses_the_shipped_settings_for_another_env_before_they_are_used(tmp_path, capsys):
    """Action entries beyond the env's actions, and shift names of fiper's tasks for an env without them: refused before
    anything runs (the entries again against the demos, before training); valid entries left as shipped for
    pick-and-place: a note naming them."""
    from launch.pipeline import check_action_dims, validate_all

    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        shipped = compose("pipeline", [*REACHER_OVERRIDES])  # cells [obstacle, init_pose, push, ...] of fiper's tasks
        with pytest.raises(ValueError, match=r"the env of task 'Reacher-v5' and its demos have 2-d actions, but "
                                             r"monitor.scores.ace.dims=\[0, 1, 2\] .*dims=\[0,1\].*nothing has run yet"):
            validate_all(shipped, tmp_path / "run")
        with pytest.raises(ValueError, match=r"stage 'stress rollouts': the cells name shifts \['init_pose', 'mass', "
                                             r"'object_size', 'obs_noise', 'obstacle', 'push'\] .*rollouts.factories"):
            validate_all(compose("pipeline", [*REACHER_OVERRIDES, "monitor.scores.ace.dims=[0,1]"]), tmp_path / "run")
        store = EpisodeStore.create(tmp_path / "demos.zarr", attrs={"task": "Reacher-v5"})
        store.append_episode({"obs": np.zeros((3, 10)), "action": np.zeros((3, 2), np.float32)})
        with pytest.raises(ValueError, match=r"task 'Reacher-v5' have 2-d actions, but monitor.scores.ace.dims=\[0, 1, 2\] "
                                             r"select entries beyond them. .*monitor.scores.ace.dims=\[0,1\] \(the evaluation reads it too\)"):
            check_action_dims(shipped, tmp_path / "demos.zarr")
        wide = EpisodeStore.create(tmp_path / "wide.zarr", attrs={"task": "Pusher-v5"})
        wide.append_episode({"obs": np.zeros((3, 23)), "action": np.zeros((3, 7), np.float32)})
        check_action_dims(shipped, tmp_path / "wide.zarr")
        assert "[monitor] note: monitor.scores.ace.dims=[0, 1, 2] are the settings shipped " \
               "for 'pick_place'; this run's task is 'Pusher-v5'" in capsys.readouterr().out
        own_policy = compose("pipeline", [*REACHER_OVERRIDES, "train.checkpoint=null", "train.checkpoint_task=null"])
        check_action_dims(own_policy, tmp_path / "wide.zarr")  # a run training its own policy (as every example does) too
        assert "[monitor] note: monitor.scores.ace.dims=[0, 1, 2] are the settings shipped " \
               "for 'pick_place'; this run's task is 'Pusher-v5'" in capsys.readouterr().out
        mine = compose("pipeline", [*REACHER_OVERRIDES, "monitor.scores.ace.dims=[0,1]"])
        check_action_dims(mine, tmp_path / "demos.zarr")
        check_action_dims(mine, tmp_path / "wide.zarr")
        assert "note" not in capsys.readouterr().out  # settings of the user's own are not called pick-and-place's


@pytest.mark.slow
def test_the_documented_pipeline_command_runs_every_stage(tmp_path):
    """python -m launch.pipeline --config-dir examples/gym_reacher/conf --config-name pipeline_reacher, tiny."""
    run_dir = tmp_path / "run"
    done = run_example_pipeline(
        "gym_reacher", run_dir, cells="[[none,[0.0]],[arm_start,[1.0]],[joint_damping,[1.0]],[obs_noise,[1.0]]]",
        demos=4, steps=30, seeds_per_cell=2,
        # the outcome sweep on an env whose actions name no positions: its entries given, one response, one seed per cell
        extra=("++act={cells:[[none,[0.0]],[arm_start,[1.0]]],seeds_start:60000,seeds_per_cell:1,responses:[stop],videos:false,"
               "overrides:['context.position_dims=[0,1]','context.gripper_dims=[]','context.action_mode=velocity','progress=false']}",))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "not using train.checkpoint" not in done.stdout  # the example sets train.checkpoint=null: nothing shipped is looked at

    demos = EpisodeStore.open(run_dir / "demos.zarr")
    assert demos.attrs["task"] == "Reacher-v5" and demos.data_keys == ["action", "obs"] and demos.meta("success").all()
    assert demos.attrs["control_period_s"] == pytest.approx(0.02)
    assert demos.attrs["collect_config"]["expert"] == "examples.gym_reacher.expert:ReachExpert"
    policy = json.loads((run_dir / "policy" / "config.json").read_text())
    assert policy["obs_shapes"] == {"obs": [10]} and policy["action_dim"] == 2  # trained here, on Reacher's observation
    stress = EpisodeStore.open(run_dir / "stress.zarr")
    assert stress.attrs["task"] == "Reacher-v5" and stress.attrs["control_period_s"] == pytest.approx(0.02)  # Reacher's dt
    assert sorted(set(stress.meta("shift").astype(str))) == ["arm_start", "joint_damping", "none", "obs_noise"]
    assert set(stress.meta("failure_reason").astype(str)) <= {"", "timeout"}  # Reacher says success only: failures time out
    lengths, reasons = stress.episode_lengths, stress.meta("failure_reason").astype(str)
    assert (stress.meta("failure_step")[reasons == "timeout"] == lengths[reasons == "timeout"] - 1).all()
    metrics = json.loads((run_dir / "evaluation" / "metrics.json").read_text())
    assert list(metrics["tasks"]) == ["Reacher-v5"] and metrics["tasks"]["Reacher-v5"]["control_period_s"] == pytest.approx(0.02)
    assert (run_dir / "evaluation" / "monitor_Reacher-v5.yaml").exists() and (run_dir / "monitor_chosen.done").exists()
    from fiper.monitor import load_monitor

    assert load_monitor(run_dir / "monitor_chosen").delta == 0.5
    outcome = json.loads((run_dir / "act" / "outcome.json").read_text())
    assert outcome["task"] == "Reacher-v5" and EpisodeStore.open(run_dir / "act" / "stop.zarr").attrs["task"] == "Reacher-v5"
    assert (run_dir / "pipeline_config.yaml").exists()
