"""External policies on the command line: policy_factory='module:function' (called with device=) replaces policy_dir
in launch.fit, launch.calibrate and launch.stress; stores and monitors record the factory and its weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from external_policies import load
from hydra import compose, initialize_config_dir

from fiper.fingerprint import FingerprintMismatch
from fiper.monitor import load_monitor
from fiper.storage import EpisodeStore
from launch import calibrate, collect, fit, pipeline, stress
from launch.validate import ConfigError

CONF = str(Path(__file__).resolve().parents[2] / "launch" / "conf")
FACTORY = "policy_factory=external_policies:load"
SHORT = ["env=pick_place", "+env.kwargs.max_episode_steps=12", "num_samples=2", "device=cpu", "cells=[[none,[0.0]]]",
         "seeds.start=0", "progress=false"]
SMALL = ["++monitor.scores.rnd_oe.target_widths=[16]", "++monitor.scores.rnd_oe.predictor_widths=[32,32]",
         "++monitor.scores.rnd_oe.out_dim=8", "++monitor.scores.rnd_oe.train={max_epochs: 2}", "++monitor.scores.ace.dims=[0,1]"]


def run(module, name: str, overrides: list[str]):
    with initialize_config_dir(config_dir=CONF, version_base=None):
        return module.run(compose(config_name=name, overrides=overrides))


def test_fit_calibrate_and_stress_load_the_factorys_policy(tmp_path, capsys):
    adapter = load("cpu")
    demos, held_out, monitor = tmp_path / "demos.zarr", tmp_path / "held_out.zarr", tmp_path / "monitor"
    run(collect, "collect", ["env=pick_place", "n_episodes=1", f"out={demos}", "progress=false"])
    run(collect, "collect", ["env=pick_place", "n_episodes=1", f"out={held_out}", "seed=50", "progress=false"])
    capsys.readouterr()
    fitted = run(fit, "fit", [f"data={demos}", FACTORY, "num_samples=2", f"out={monitor}", "progress=false", *SMALL])  # demos: replayed
    assert "replaying decisions" not in capsys.readouterr().err  # progress=false: no bar in a log file
    assert fitted.identity.fingerprint == adapter.fingerprint() and fitted.identity.name == "DiffusersPolicy"
    assert fitted.identity.sample_shape == (2, adapter.horizon, adapter.action_dim)
    run(calibrate, "calibrate", [f"data={held_out}", FACTORY, f"monitor_dir={monitor}", "delta=0.5", "threshold_type=constant",
                                 "progress=false"])
    assert "replaying decisions" not in capsys.readouterr().err
    assert load_monitor(monitor, policy=adapter).calibrated  # the monitor checks it was fitted for this policy's weights

    out = tmp_path / "rollouts.zarr"
    run(stress, "stress", [*SHORT, FACTORY, f"monitor_dir={monitor}", f"out={out}", "seeds.count=1"])
    store = EpisodeStore.open(out)
    values = store.attrs["fingerprint"]["values"]
    assert values["policy.factory"] == "external_policies:load" and values["policy.weights"] == adapter.fingerprint()
    assert store.attrs["policy_fingerprint"] == adapter.fingerprint() and store.attrs["stress_config"]["policy_dir"] is None
    samples = store.read_decisions("samples")
    assert samples.shape[1:] == (2, adapter.horizon, adapter.action_dim) and store.n_episodes == 1
    assert {"embedding", "samples", "score/rnd_oe", "score/ace"} <= set(store.decision_keys)  # scored live
    assert np.isfinite(store.read_decisions("score/rnd_oe")).all() and np.isfinite(store.read_decisions("score/ace")).all()
    with pytest.raises(FingerprintMismatch, match=r"policy\.factory: \"external_policies:load\" -> \"external_policies:load_ddpm\""):
        run(stress, "stress", [*SHORT, "policy_factory=external_policies:load_ddpm", f"out={out}", "seeds.count=2"])


def test_exactly_one_policy_source_and_the_factory_must_return_a_policy(tmp_path):
    policy_dir = tmp_path / "policy"
    policy_dir.mkdir()
    with pytest.raises(ConfigError, match=r"policy_dir / policy_factory: expected exactly one of them, got both .*policy_factory=my_pkg"):
        run(stress, "stress", [*SHORT, FACTORY, f"policy_dir={policy_dir}", f"out={tmp_path / 'r.zarr'}"])
    with pytest.raises(ConfigError, match=r"policy_dir / policy_factory: expected exactly one of them, got neither"):
        run(stress, "stress", [*SHORT, f"out={tmp_path / 'r.zarr'}"])
    with pytest.raises(ConfigError, match=r"policy_dir / policy_factory: expected at most one of them, got both"):
        run(fit, "fit", [f"data={tmp_path}", FACTORY, f"policy_dir={policy_dir}", f"out={tmp_path / 'm'}"])
    with pytest.raises(ConfigError, match=r"policy_factory='external_policies': expected 'module:function'"):
        run(stress, "stress", [*SHORT, "policy_factory=external_policies", f"out={tmp_path / 'r.zarr'}"])
    with pytest.raises(ValueError, match=r"returned a dict, not a fiper GenerativePolicy .*'encode', 'sample'.*DiffusersPolicy"):
        run(stress, "stress", [*SHORT, "policy_factory=external_policies:not_a_policy", f"out={tmp_path / 'r.zarr'}"])
    with pytest.raises(ValueError, match=r"policy_factory=external_policies:no_device takes no device= keyword .*"
                                         r"def no_device\(device: str = 'cpu'\)"):
        run(stress, "stress", [*SHORT, "policy_factory=external_policies:no_device", f"out={tmp_path / 'r.zarr'}"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["policy"]  # nothing was created


def test_a_failsafe_in_a_sweep_without_a_fallback_names_the_command_line_fixes(tmp_path):
    with pytest.raises(ValueError, match=r"fail-safe alarm at env step 0, the chunk to execute holds .* non-finite actions.*"
                                         r"launch.stress: fix the policy.*or answer faults with a fallback: response=hold"):
        run(stress, "stress", [*SHORT, "policy_factory=external_policies:nan_sampling", f"out={tmp_path / 'r.zarr'}",
                               "seeds.count=1"])


def test_a_factory_that_ignores_device_is_named():
    from launch.common import call_policy_factory

    with pytest.warns(UserWarning, match=r"policy_factory=external_policies:cpu_always was called with device='meta' and returned a "
                                         r"policy on cpu"):
        assert call_policy_factory("external_policies:cpu_always", "meta").device.type == "cpu"


@pytest.mark.parametrize("factory, says", [("noisy_encode", "encode returned different embeddings"),
                                            ("global_noise", "instead of the generator= it is given")])
def test_a_factory_whose_decisions_do_not_replay_is_named(factory, says):
    from launch.common import call_policy_factory

    with pytest.warns(UserWarning, match=f"policy_factory=external_policies:{factory}: the policy's .*{says}"):
        call_policy_factory(f"external_policies:{factory}", "cpu")


def test_a_deterministic_factory_loads_without_a_warning():
    import warnings

    from launch.common import call_policy_factory

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        call_policy_factory("external_policies:load", "cpu")


def test_the_pipeline_passes_the_factory_to_every_stage_that_loads_a_policy(tmp_path):
    run_dir = tmp_path / "run"
    with initialize_config_dir(config_dir=CONF, version_base=None):
        cfg = compose(config_name="pipeline", overrides=[f"run_dir={run_dir}", FACTORY])
        pipeline.validate_all(cfg, run_dir)  # every stage's composed config passes its checks
        loaders = {}
        for stage, steps in pipeline._steps(cfg, run_dir, None).items():
            for step in (s for s in steps if s.module in (stress, fit, calibrate)):
                composed = step.compose()
                loaders[f"{stage}/{step.config_name}"] = (composed.policy_factory, composed.policy_dir)
        with pytest.raises(ConfigError, match=r"policy_factory='external_policies': expected 'module:function'"):
            pipeline.validate_all(compose(config_name="pipeline", overrides=[f"run_dir={run_dir}", "policy_factory=external_policies"]),
                                  run_dir)
    assert len(loaders) == 7 and set(loaders.values()) == {("external_policies:load", None)}
    assert not run_dir.exists()
