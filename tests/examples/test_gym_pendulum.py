"""gymnasium's InvertedPendulum-v5 through the bring-your-own-env path: an env whose failures end the episode
(the pole falls), so fiper's default label is a `terminated` failure with an onset; its expert, its shift
factories and every stage of launch.pipeline run by the example's documented command at a tiny size."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from example_pipeline import run_example_pipeline

pytest.importorskip("imageio", reason="gymnasium's MuJoCo envs import imageio (pip install 'fiper[image]')")

from fiper.collection import run_episode
from fiper.env_factory import env_task_name  # noqa: E402
from fiper.storage import EpisodeStore  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # the example is imported as examples.gym_pendulum, as from the repository root

from examples.gym_pendulum import envs as pendulum  # noqa: E402
from examples.gym_pendulum.expert import BalanceExpert  # noqa: E402


def test_the_expert_balances_a_fall_is_a_terminated_failure_and_severity_zero_is_nominal():
    env = pendulum.make_pendulum(max_episode_steps=60)
    episodes = [run_episode(env, BalanceExpert(env), seed) for seed in range(5)]
    assert all(e.success and e.failure_step == -1 for e in episodes)
    assert env_task_name(env) == "InvertedPendulum-v5" and env.unwrapped.dt == pytest.approx(0.04)

    class Idle:  # no force: the pole falls well before the time limit
        def reset(self, seed=None):
            pass

        def act(self, obs, info):
            return np.zeros(1, np.float32)

    fall = run_episode(env, Idle(), 0)
    assert not fall.success and fall.failure_reason == "terminated" and 0 < fall.failure_step < 59
    nominal = env.reset(seed=3)[0]
    for shift in (pendulum.push, pendulum.weak_motor, pendulum.obs_noise):
        np.testing.assert_array_equal(shift(severity=0.0, max_episode_steps=60).reset(seed=3)[0], nominal)
    weak = pendulum.weak_motor(severity=1.0)
    assert weak.unwrapped.model.actuator_gear[0, 0] == pytest.approx(0.2 * env.unwrapped.model.actuator_gear[0, 0])
    with pytest.raises(ValueError, match=r"push: severity must be a number in \[0, 1\], got 2.0"):
        pendulum.push(severity=2.0)
    with pytest.raises(ValueError, match="BalanceExpert drives gymnasium's InvertedPendulum-v5"):
        BalanceExpert(pendulum.gym.make("Reacher-v5"))


@pytest.mark.slow
def test_the_documented_pipeline_command_runs_every_stage_and_measures_lead_before_falls(tmp_path):
    """python -m launch.pipeline --config-dir examples/gym_pendulum/conf --config-name pipeline_pendulum, tiny."""
    run_dir = tmp_path / "run"
    done = run_example_pipeline("gym_pendulum", run_dir, cells="[[none,[0.0]],[push,[1.0]],[weak_motor,[1.0]],[obs_noise,[1.0]]]",
                                demos=20, steps=1500, seeds_per_cell=3,
                                env_overrides="'++progress=false','++env.kwargs.max_episode_steps=40'",
                                # the config's outcome sweep (hold, and the hand-over to the safe controller), one seed per cell
                                extra=("act.cells=[[none,[0.0]],[push,[1.0]],[weak_motor,[1.0]]]", "act.seeds_per_cell=1",
                                       "act.videos=false"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    demos = EpisodeStore.open(run_dir / "demos.zarr")
    assert demos.attrs["task"] == "InvertedPendulum-v5" and demos.data_keys == ["action", "obs"] and demos.meta("success").all()
    assert demos.attrs["control_period_s"] == pytest.approx(0.04)
    stress = EpisodeStore.open(run_dir / "stress.zarr")
    assert sorted(set(stress.meta("shift").astype(str))) == ["none", "obs_noise", "push", "weak_motor"]
    reasons, steps, lengths = stress.meta("failure_reason").astype(str), stress.meta("failure_step"), stress.episode_lengths
    assert set(reasons) <= {"", "terminated", "timeout"} and "terminated" in set(reasons)  # a weak motor or a shove: falls
    fell = reasons == "terminated"
    assert (steps[fell] == lengths[fell] - 1).all() and (lengths[fell] < 40).all()  # the fall ends the episode: its onset
    metrics = json.loads((run_dir / "evaluation" / "metrics.json").read_text())
    task = metrics["tasks"]["InvertedPendulum-v5"]
    assert task["control_period_s"] == pytest.approx(0.04)
    assert task["by_failure_type"]["physical_with_onset"] == int(fell.sum()) + int(
        sum((EpisodeStore.open(run_dir / p).meta("failure_reason").astype(str) == "terminated").sum()
            for p in ("id_fit.zarr", "id_calibration.zarr")))
    assert (run_dir / "evaluation" / "monitor_InvertedPendulum-v5.yaml").exists() and (run_dir / "monitor_chosen.done").exists()
    outcome = json.loads((run_dir / "act" / "outcome.json").read_text())["overall"]
    hold, balance = outcome["hold"], outcome["balance"]
    assert hold["episodes"] == balance["episodes"] == 3 and outcome["hold"]["without"] == balance["without"]
    # a zero force is no safe stop for the pole; the safe controller, taking over at an alarm, keeps it up
    assert balance["outcomes"]["damage"] <= hold["outcomes"]["damage"] and balance["successes_lost"] == 0
    assert balance["outcomes"]["safe_stop"] == hold["outcomes"]["safe_stop"] == 0


def test_the_safe_controller_balances_from_the_observation_under_the_strongest_shove():
    """The fallback an alarm hands the cart to reads only the observation (a flat array, or the loop's {'obs': ...})."""
    from examples.gym_pendulum.expert import balance_controller

    env = pendulum.push(severity=1.0)
    for seed in range(3):
        obs, info = env.reset(seed=seed)
        while True:
            action = balance_controller({"obs": obs} if seed % 2 else obs)
            assert action.shape == (1,) and abs(float(action[0])) <= 3.0
            obs, _, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                break
        assert info["success"] and not terminated
