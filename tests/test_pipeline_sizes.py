"""Rollout counts too small for the pipeline's δ levels, even if every in-distribution rollout succeeded, stop it
before anything runs."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from launch import pipeline
from launch.pipeline_sizes import check_recorded_successes, check_sizes, in_distribution_rollouts

CONF = str(Path(__file__).resolve().parents[1] / "launch" / "conf")


def _check(overrides):
    """validate_all's size check on the composed pipeline config (the live monitor and evaluation as the stages compose them)."""
    with initialize_config_dir(config_dir=CONF, version_base=None):
        cfg = compose("pipeline", overrides)
        steps = pipeline._steps(cfg, Path("unused"), None)
        fit_step = steps["fit + calibrate monitor"][0].compose()
        evaluation = pipeline.evaluate.evaluation_config(steps["evaluate"][0].compose(), device="cpu")
        check_sizes(cfg, {**dict(fit_step.monitor), "delta": cfg.monitor.delta}, evaluation)
        return cfg


def test_the_shipped_counts_attain_every_level_they_calibrate_at():
    cfg = _check([])
    assert in_distribution_rollouts(cfg) == (100, 80 + 100 + 20)


@pytest.mark.parametrize("overrides, message", [
    # deploy_delta 0.025 needs 77 calibration successes: the deployed monitor is the evaluation's choice, which may be
    # calibrated jointly or be a band (39 would do for separate constant thresholds)
    (["rollouts.calibration_episodes=30"], r"deploy_delta=0.025 needs 77 calibration successes for the constant \(joint "
                                           r"calibration\) thresholds the evaluation may choose.*at least 77, or deploy_delta"),
    # the live monitor at δ = 0.02 needs 49
    (["monitor.delta=0.02", "rollouts.calibration_episodes=40", "deploy_delta=null"], r"live monitor \(constant thresholds\) at monitor.delta=0.02 needs 49"),
    # a joint monitor calibrates on two parts: 37 at δ = 0.05 where separate constant thresholds need 19
    (["monitor.delta=0.05", "monitor.joint=true", "rollouts.calibration_episodes=30", "deploy_delta=null"],
     r"live monitor \(constant thresholds, joint\) at monitor.delta=0.05 needs 37"),
    # the evaluation's grid from 0.01 asks for 197 calibration successes; 200 rollouts split 0.3 / 0.5 leave 100
    (["evaluate.deltas=null"], r"evaluation's constant \(joint calibration\) thresholds at δ=0.01 need 197 calibration successes, but its split leaves "
                               r"at most 100 of 200 .*keep evaluate.deltas=\[0.02,"),
])
def test_counts_no_success_rate_could_make_enough_are_refused_naming_the_fix(overrides, message):
    with pytest.raises(ValueError, match=message):
        _check(overrides)


def test_the_pipeline_stops_before_it_collects(tmp_path):
    run_dir = tmp_path / "run"
    with initialize_config_dir(config_dir=CONF, version_base=None):
        cfg = compose("pipeline", [f"run_dir={run_dir}", "rollouts.calibration_episodes=20", "++act=null"])
        with pytest.raises(ValueError, match=r"too few rollouts even if every in-distribution rollout succeeded \(20 calibration.*"
                                             r"nothing has run yet"):
            pipeline.run(cfg)
    assert not run_dir.exists()


def _shipped():
    with initialize_config_dir(config_dir=CONF, version_base=None):
        cfg = compose("pipeline", [])
        return cfg, pipeline._evaluation_config(pipeline._steps(cfg, Path("unused"), None))


def test_the_successes_the_rollouts_gave_are_checked_before_the_stress_rollouts():
    """30 of 100 calibration rollouts succeeding cannot calibrate deploy_delta 0.025 (77): the fix scales the count by
    the success rate seen; 20 fit and 10 calibration successes also leave the evaluation's split too few for its grid,
    the stress rollouts' 'none' cells counted at that rate."""
    cfg, evaluation = _shipped()
    check_recorded_successes(cfg, evaluation, 60, 80)  # enough for both
    with pytest.raises(ValueError, match=r"gave 60 of 80 fit and 30 of 100 calibration successes \(30%\): deploy_delta=0.025 "
                                         r"needs 77 .*at least 257, or deploy_delta \(null skips the deploy stage\)\. The pipeline stopped before the stress rollouts"):
        check_recorded_successes(cfg, evaluation, 60, 30)
    with pytest.raises(ValueError, match=r"constant \(joint calibration\) thresholds at δ=0.05 need 37 calibration successes, but its split leaves at most "
                                         r"17 of 33 in-distribution successes"):
        check_recorded_successes(cfg, evaluation, 20, 10)
    # a third of the rollouts succeeding: the 20 stress 'none' rollouts count as 6 successes (66 in all, 33 to calibrate),
    # not as 20 (80, 40), which would pass here and stop the evaluation after the stress rollouts
    with pytest.raises(ValueError, match=r"at δ=0.05 need 37 calibration successes, but its split leaves at most 33 of 66"):
        check_recorded_successes(cfg, evaluation, 20, 40)
    with pytest.raises(ValueError, match=r"needs 77 .*or, as the policy succeeds on only 7% of its in-distribution rollouts, train a "
                                         r"better one first \(more train.steps"):
        check_recorded_successes(cfg, evaluation, 5, 8)
    with pytest.raises(ValueError) as err:
        check_recorded_successes(cfg, evaluation, 60, 30)
    assert "train a better one" not in str(err.value)  # 50 % in distribution: the policy is not the problem
