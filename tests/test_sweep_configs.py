"""Sweep launcher presets compose (local joblib, SLURM via submitit, Ray) for every rollout entry point."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

import launch.components  # noqa: F401  (the generated score/monitor/method groups the configs compose)

CONF = Path(__file__).resolve().parents[1] / "launch" / "conf"


def _compose(entry: str, *overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        return compose(config_name=entry, overrides=["out=x", *overrides], return_hydra_config=True)


@pytest.mark.parametrize(("preset", "target"), [("local", "JoblibLauncher"), ("slurm", "SlurmLauncher"), ("ray_cluster", "RayLauncher")])
@pytest.mark.parametrize("entry", ["stress", "act", "evaluate", "collect"])
def test_launcher_preset_composes(entry, preset, target):
    cfg = _compose(entry, f"hydra/launcher={preset}")
    assert cfg.hydra.launcher._target_.endswith(target)


def test_ray_preset_joins_a_cluster_and_runs_jobs_in_the_launching_directory():
    assert _compose("stress", "hydra/launcher=ray_cluster").hydra.launcher.ray.init.address == "local"  # a new Ray, never a stale one
    cfg = _compose("stress", "hydra/launcher=ray_cluster", "hydra.launcher.ray.init.address=auto")
    assert dict(cfg.hydra.launcher.ray.init) == {"address": "auto", "object_store_memory": None,  # Ray refuses a size when joining
                                                 "num_cpus": None}
    assert _compose("stress", "hydra/launcher=ray_cluster", "hydra.launcher.ray.init.num_cpus=2").hydra.launcher.ray.init.num_cpus == 2
    assert dict(cfg.hydra.launcher.ray.remote) == {"num_cpus": 1, "num_gpus": 0}
    assert cfg.hydra.callbacks.run_in_launch_directory._target_ == "launch.job_directory.RunInLaunchDirectory"
    assert cfg.hydra.sweep.dir.startswith(cfg.hydra.runtime.cwd + "/multirun/")



@pytest.mark.parametrize("preset", ["local", "ray_cluster"])
def test_a_refused_job_raises_its_error_instead_of_exiting(preset):
    """launch.* exit with the message alone unless FIPER_TRACEBACK is set; a bare exit in a pool worker stops
    the other jobs (joblib) or kills the worker (Ray), so these presets set it for their jobs."""
    assert _compose("stress", f"hydra/launcher={preset}").hydra.job.env_set.FIPER_TRACEBACK == "1"


def test_a_response_composes_from_its_group_and_the_other_word_for_it_is_refused_naming_the_setting(capsys):
    from launch.validate import refuse_renamed

    assert _compose("stress", "response=hold").response.fallback.name == "hold"
    with pytest.raises(SystemExit, match=r"launch.stress has no setting 'intervention'; it is called 'response': "
                                         r"response.steering.num_particles=8"):
        refuse_renamed(["out=x", "intervention.steering.num_particles=8"], {"intervention": "response"}, "launch.stress")
    refuse_renamed(["out=x", "response=hold", "interventions=1"], {"intervention": "response"}, "launch.stress")  # others pass


@pytest.mark.parametrize(("preset", "package", "extra"), [("local", "hydra-joblib-launcher", "cluster"),
                                                          ("slurm", "hydra-submitit-launcher", "cluster"),
                                                          ("ray_cluster", "hydra-ray-launcher", "ray")])
def test_a_launcher_whose_plugin_is_not_installed_ends_the_command_naming_the_install(preset, package, extra):
    """An environment of its own (a user's env's) may lack the sweep extras: python -m launch.<entry point> with
    hydra/launcher=<preset> ends naming the package and fiper's extra, before hydra's "Could not load
    'hydra/launcher/joblib'"; an installed plugin and other overrides pass."""
    import subprocess
    import sys

    from launch.validate import LAUNCHER_PLUGINS, check_launcher_plugin

    check_launcher_plugin(["env=push_t", f"hydra/launcher={preset}"])  # installed in the suite's environment
    module = LAUNCHER_PLUGINS[preset][0]
    hide = ("import importlib.util, sys; found = importlib.util.find_spec; "
            f"importlib.util.find_spec = lambda name, *a: None if name == {module!r} else found(name, *a); "
            f"sys.argv = ['-m', 'seeds.start=0,1000', 'hydra/launcher={preset}']; import launch")
    done = subprocess.run([sys.executable, "-c", hide], capture_output=True, text=True, cwd=CONF.parents[1], timeout=120)
    assert done.returncode == 1
    assert (f"error: hydra/launcher={preset} runs the sweep through {package}, which is not installed in this environment "
            f"({sys.executable}): pip install 'fiper[{extra}]' (or pip install {package})") in done.stderr
