"""Hard deadlines from the command line: launch.stress and launch.act put the policy's calls and the monitor's step
under ``deadline_ms``, an overrun ends the decision in the response's fallback and is recorded with its reason, the
run without fiper runs without them, and a sweep with nothing to fall back to is refused before it runs."""

from __future__ import annotations

import time

import pytest
from hydra import compose, initialize_config_dir
from test_act_launch import CONF, MAX_STEPS, NOMINAL, Unguided, config, run_dirs, tiny_policy  # noqa: F401  (run_dirs: the module's fixture)

from fiper.fingerprint import FingerprintMismatch
from fiper.storage import EpisodeStore
from launch import act, stress
from launch.validate import ConfigError

SLOW_S = 0.4  # every sample call takes this long: four times the deadline the tests set


class Slow(Unguided):
    """The fixture's policy behind a sample that takes SLOW_S: a policy too slow for its control period."""

    def sample(self, embedding, num_samples, **kwargs):
        time.sleep(SLOW_S)
        return self.policy.sample(embedding, num_samples, **kwargs)


def slow_policy(device: str = "cpu"):
    """policy_factory=test_launch_deadlines:slow_policy."""
    return Slow(tiny_policy(device))


def stress_config(root, out, *extra: str):
    overrides = [f"policy_dir={root / 'policy'}", f"monitor_dir={root / 'monitor'}", f"out={out}", "env=push_t", "num_samples=8",
                 "cells=[[none,[0.0]]]", "seeds.start=5", "seeds.count=1", "progress=false",
                 f"+env.kwargs.max_episode_steps={MAX_STEPS}", *extra]
    with initialize_config_dir(config_dir=CONF, version_base=None):
        return compose(config_name="stress", overrides=overrides)


def reasons(store: EpisodeStore, episode: int = 0) -> list[str]:
    return [str(r) for r in store.episode_decisions(episode, ["reason"])["reason"]]


def test_act_runs_each_response_under_the_deadline_and_the_run_without_fiper_without_it(run_dirs, tmp_path, capsys):
    out = tmp_path / "act"
    act.run(config(run_dirs, out, "responses=[hold]", NOMINAL, "seeds.count=1", "deadline_ms.policy=100", "plot=false",
                   policy="policy_factory=test_launch_deadlines:slow_policy"))
    held, without = EpisodeStore.open(out / "hold.zarr"), EpisodeStore.open(out / "without.zarr")
    first = reasons(held)[0]
    assert "the policy's sample raised DeadlineExceeded" in first and "within its deadline of 100 ms" in first
    assert str(held.episode_decisions(0, ["intervention"])["intervention"][0]).startswith("fallback")
    assert not any(reasons(without)) and len(reasons(without)) > 1  # slow, but never cut short: no fallback to end in
    printed = capsys.readouterr().out
    assert "deadline_ms.policy=100:" in printed and "overran in this run" in printed
    with pytest.raises(FingerprintMismatch, match=r"deadline_ms"):  # the response's store: recorded under another deadline
        act.run(config(run_dirs, out, "responses=[hold]", NOMINAL, "seeds.count=1", "plot=false",
                       policy="policy_factory=test_launch_deadlines:slow_policy"))


def test_stress_records_an_overrun_as_a_fallback_decision_and_keeps_old_fingerprints(run_dirs, tmp_path, capsys):
    plain_out, timed_out = tmp_path / "plain.zarr", tmp_path / "timed.zarr"
    stress.run(stress_config(run_dirs, plain_out, "response=hold"))
    assert not any(k.startswith("deadline_ms") for k in EpisodeStore.open(plain_out).attrs["fingerprint"]["values"])  # as before
    stress.run(stress_config(run_dirs, timed_out, "response=hold", "deadline_ms.policy=100", "deadline_ms.monitor=5000",
                             "policy_factory=test_launch_deadlines:slow_policy", "policy_dir=null"))
    store = EpisodeStore.open(timed_out)
    assert "within its deadline of 100 ms" in reasons(store)[0]
    assert store.attrs["fingerprint"]["values"]["deadline_ms.policy"] == 100.0
    printed = capsys.readouterr().out
    assert "deadline_ms.policy=100:" in printed and "deadline_ms.monitor=5000: 0 call(s) overran" in printed


def test_a_deadline_without_a_fallback_or_a_monitor_and_a_bad_deadline_are_refused_before_anything_runs(run_dirs, tmp_path):
    out = tmp_path / "r.zarr"
    with pytest.raises(ValueError, match=r"deadline_ms=\{'policy': 100.0\}: an overrun ends the decision in the response's "
                                         r"fallback, and this run has none.*response=hold"):
        stress.run(stress_config(run_dirs, out, "deadline_ms.policy=100"))
    with pytest.raises(ConfigError, match=r"deadline_ms=.*expected \{policy: <ms> or null, monitor: <ms> or null\}.*"
                                          r"deadline_ms.policy=100"):
        stress.run(stress_config(run_dirs, out, "response=hold", "deadline_ms.policy=-5"))
    with pytest.raises(ConfigError, match=r"deadline_ms=.*expected"):
        stress.run(stress_config(run_dirs, out, "response=hold", "+deadline_ms.encoder=50"))
    assert not out.exists()


def test_a_monitor_deadline_without_a_monitor_is_refused_naming_the_fix(run_dirs, tmp_path):
    out = tmp_path / "r.zarr"  # a response acts on the monitor's alarms: without one there is no fallback to end in either
    with pytest.raises(ValueError, match=r"pass monitor_dir=<fitted \+ calibrated monitor>"):
        stress.run(stress_config(run_dirs, out, "response=hold", "monitor_dir=null", "deadline_ms.monitor=20"))
    assert not out.exists()
