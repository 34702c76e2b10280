"""Graded response: steer first, fall back when the ratio does not come down."""

import numpy as np
import pytest

from fiper.interventions import FallbackContext, GradedResponse, Reach, Steering, make_fallback


def response(n=3, **kw):
    return GradedResponse(Steering(Reach([0, 0])), make_fallback("hold"), max_steer_decisions=n, **kw)


def test_switches_to_the_fallback_after_n_decisions_with_ratio_at_least_one():
    g = response(n=3)
    labels = [g.step(False, 0.5), g.step(True, 1.4)]
    assert labels == ["none", "steer"] and g.excluded_scores == ("ace",)
    labels += [g.step(True, 1.3), g.step(True, 1.2)]
    assert labels[-2:] == ["steer", "steer"]
    labels.append(g.step(True, 1.1))  # third steered decision still >= 1
    assert labels[-1] == "fallback:hold" and g.mode == "fallback" and g.excluded_scores == ()
    labels.append(g.step(False, 0.2))  # latched until reset
    assert labels[-1] == "fallback:hold"
    assert g.labels == labels
    ctx = FallbackContext(action_dim=2, position_dims=(0, 1))
    ctx.record(np.array([0.1, 0.2]))
    assert np.allclose(g.fallback_action({"agent_pos": np.array([0.3, 0.4])}, ctx), [0.3, 0.4])
    g.reset()
    assert g.mode == "none" and g.labels == []
    with pytest.raises(RuntimeError, match="only valid after"):
        g.fallback_action({}, ctx)


def test_stays_steering_when_the_ratio_drops():
    g = response(n=2)
    g.step(True, 1.5)
    seq = [g.step(True, r) for r in (1.2, 0.8, 1.1, 0.9, 0.7, 0.6, 1.05, 0.95)]
    assert seq == ["steer"] * 8  # never two decisions in a row >= 1
    assert g.step(True, 1.3) == "steer" and g.step(True, 1.3) == "fallback:hold"


def test_release_after_returns_to_the_plain_policy():
    g = response(n=2, release_after=2)
    g.step(True, 1.5)
    assert [g.step(False, r) for r in (0.9, 0.8, 0.7)] == ["steer", "none", "none"]


def test_without_steering_or_on_monitor_failure_falls_back_at_once():
    g = GradedResponse(fallback=make_fallback("stop"))
    assert g.step(False, 0.4) == "none" and g.step(True, 1.2) == "fallback:stop"
    g = response()
    assert g.step(False, float("nan")) == "fallback:hold"
    g = response()
    assert g.fail_safe() == "fallback:hold" and g.mode == "fallback" and g.labels == ["fallback:hold"]  # every decision labelled
    only_steer = GradedResponse(Steering(Reach([0, 0])))
    assert [only_steer.step(True, 2.0) for _ in range(10)] == ["steer"] * 10
    with pytest.raises(RuntimeError, match="no fallback"):
        only_steer.fail_safe()
    with pytest.raises(ValueError, match="steering object, a fallback, or both"):
        GradedResponse()
    with pytest.raises(ValueError, match="max_steer_decisions"):
        response(n=0)


def test_start_steer_steers_from_the_first_decision_without_an_alarm():
    g = response(n=10**6, start="steer")
    assert [g.step(False, 0.2), g.step(False, 0.3), g.step(True, 1.5)] == ["steer"] * 3 and g.excluded_scores == ("ace",)
    g.reset()
    assert g.mode == "steer" and g.labels == []
    with pytest.raises(ValueError, match="start='steer' needs a steering object"):
        GradedResponse(fallback=make_fallback("hold"), start="steer")
    with pytest.raises(ValueError, match="'policy' .* or 'steer'"):
        response(start="always")


def test_steer_from_start_config_of_the_outcome_sweep_builds():
    from pathlib import Path

    import yaml

    from fiper.interventions import response_from_config

    conf = Path(__file__).resolve().parents[2] / "launch" / "conf"
    entry = dict(yaml.safe_load((conf / "act.yaml").read_text())["response_configs"]["steer_from_start"])
    preset = yaml.safe_load((conf / "response" / f"{entry.pop('preset')}.yaml").read_text())
    steering = {**preset["steering"], **entry.pop("steering")}
    g = response_from_config({**preset, **entry, "steering": steering})
    assert isinstance(g, GradedResponse) and g.start == "steer" and g.mode == "steer"
