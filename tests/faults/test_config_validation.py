"""Every entry point checks its config before it creates anything: a bad value is a ConfigError (a ValueError)
naming the key, the value and a valid example, and a failed run leaves nothing behind but its log."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from launch import calibrate, collect, evaluate, fit, pipeline, stress, train
from launch.validate import ConfigError

REPO = Path(__file__).resolve().parents[2]
CONF = str(REPO / "launch" / "conf")
MODULES = {"collect": collect, "train": train, "fit": fit, "calibrate": calibrate, "stress": stress, "evaluate": evaluate,
           "pipeline": pipeline}


def inputs(root: Path) -> dict[str, list[str]]:
    """Existing input paths for every entry point (only their existence is checked), and each one's valid base overrides."""
    for name in ("store.zarr", "policy", "monitor"):
        (root / name).mkdir(exist_ok=True)
    return {
        "collect": ["env=pick_place", f"out={root / 'demos.zarr'}"],
        "train": [f"data={root / 'store.zarr'}", f"out={root / 'policy_out'}"],
        "fit": [f"data={root / 'store.zarr'}", f"out={root / 'monitor_out'}", f"policy_dir={root / 'policy'}"],
        "calibrate": [f"data={root / 'store.zarr'}", f"monitor_dir={root / 'monitor'}"],
        "stress": [f"policy_dir={root / 'policy'}", f"out={root / 'rollouts.zarr'}"],
        "evaluate": [f"rollouts={root / 'store.zarr'}", f"out={root / 'evaluation'}"],
        "pipeline": [f"run_dir={root / 'run'}"],
    }


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def run_entry(entry: str, overrides: list[str]):
    with initialize_config_dir(config_dir=CONF, version_base=None):
        return MODULES[entry].run(compose(config_name=entry, overrides=overrides))


@pytest.mark.parametrize(("entry", "override", "named"), [
    ("stress", "seeds.count=abc", "seeds.count='abc': expected an integer >= 1 (e.g. seeds.count=10)"),
    ("stress", "num_samples=2.5", "num_samples=2.5: expected an integer >= 1"),
    ("stress", "cells=[[obstacle,[1.5]]]", "cells=[['obstacle', [1.5]]]: expected a non-empty list of [shift, [severities in [0, 1]]]"),
    ("evaluate", "deltas=abc", "deltas='abc': expected a non-empty list, each element a number in (0, 1) (e.g. deltas=[0.05,0.1])"),
    ("evaluate", "deltas=[0.1,abc]", "element 'abc' is not"),
    ("evaluate", "windows=[0,episode]", "windows=[0, 'episode']: expected a list, each element an integer >= 1 or 'episode' (element 0 is not)"),
    ("fit", "num_samples=2.5", "num_samples=2.5: expected an integer >= 1 or null"),
    ("calibrate", "delta=1.5", "delta=1.5: expected a number in (0, 1) or null (e.g. delta=0.1)"),
    ("calibrate", "threshold_type=bands", "threshold_type='bands': expected one of constant | band | time_varying"),
    ("collect", "n_episodes=0", "n_episodes=0: expected an integer >= 1"),
    ("collect", "env.shifts=[[obstacle,2]]", "env.shifts=[['obstacle', 2]]: expected a list of [shift name, severity in [0, 1]] pairs"),
    ("train", "train.steps=abc", "train.steps='abc': expected an integer >= 1"),
    ("pipeline", "rollouts.seeds_per_cell=abc", "rollouts.seeds_per_cell='abc': expected an integer >= 1"),
    ("pipeline", "evaluate.deltas=abc", "evaluate.deltas='abc': expected a non-empty list, each element a number in (0, 1)"),
    ("pipeline", "evaluate.overrides=['windows=abc']", "launch.evaluate (pipeline stage 'evaluate'): invalid config"),
])
def test_a_bad_value_names_its_key_and_creates_nothing(tmp_path, entry, override, named):
    base = inputs(tmp_path)[entry]
    before = files(tmp_path)
    with pytest.raises(ConfigError) as err:
        run_entry(entry, [*base, override])
    assert named in str(err.value) and "nothing was run or written" in str(err.value)
    assert files(tmp_path) == before


def test_a_mistyped_input_path_is_named_and_not_created(tmp_path):
    base = inputs(tmp_path)["calibrate"]
    with pytest.raises(ConfigError, match=r"monitor_dir='.*typo': expected an existing monitor directory \(nothing at .*typo\)"):
        run_entry("calibrate", [base[0], f"monitor_dir={tmp_path / 'typo'}"])
    assert not (tmp_path / "typo").exists()


def test_a_missing_relative_path_names_the_directory_it_was_read_in(tmp_path, monkeypatch):
    """A sweep job moved into its output folder (hydra.job.chdir=true) reads relative paths there, not where it was launched."""
    base = inputs(tmp_path)["calibrate"]
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=rf"nothing at typo, read relative to the working directory {tmp_path}\)"):
        run_entry("calibrate", [base[0], "monitor_dir=typo"])


def test_a_failed_command_leaves_only_its_log_under_outputs(tmp_path):
    """From the command line: no store, no run folder under the (mistyped) monitor_dir; hydra's log goes to outputs/."""
    policy = REPO / "launch" / "checkpoints" / "pick_place_diffusion_mlp"
    env = {**os.environ, "PYTHONPATH": str(REPO), "MUJOCO_GL": "disable"}
    proc = subprocess.run([sys.executable, "-m", "launch.stress", f"policy_dir={policy}", f"monitor_dir={tmp_path / 'monitr'}",
                           f"out={tmp_path / 'rollouts.zarr'}", "seeds.count=abc"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stderr.startswith("error: python -m launch.stress: invalid config")
    assert "seeds.count='abc'" in proc.stderr and "monitor_dir=" in proc.stderr and "Traceback" not in proc.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["outputs"]
    assert [p.name for p in (tmp_path / "outputs").iterdir()] == ["stress"]


class BrokenExpert:
    """An expert that fails at its first action (after the store was created)."""

    def __init__(self, env):
        pass

    def reset(self, seed=None):
        pass

    def act(self, obs, info):
        raise RuntimeError("the expert lost its connection")


def test_a_collection_that_saves_nothing_leaves_no_store(tmp_path):
    with pytest.raises(RuntimeError, match="lost its connection"):
        run_entry("collect", ["env=push_t", f"out={tmp_path / 'demos.zarr'}", f"expert={__name__}:BrokenExpert", "n_episodes=1",
                              "progress=false"])
    assert list(tmp_path.iterdir()) == []


def test_a_training_run_that_fails_before_a_checkpoint_leaves_no_folder(tmp_path):
    from fiper.storage import EpisodeStore

    EpisodeStore.create(tmp_path / "actions_only.zarr").append_episode({"action": [[0.0, 1.0]] * 4})
    with pytest.raises(ValueError, match=r"holds no observation key in data/ \(keys: \['action'\]\)"):
        run_entry("train", [f"data={tmp_path / 'actions_only.zarr'}", f"out={tmp_path / 'policy'}", "train.device=cpu"])
    assert not (tmp_path / "policy").exists()


def test_required_keys_are_named_with_every_other_problem(tmp_path):
    with pytest.raises(ConfigError) as err:
        run_entry("stress", ["seeds.count=-1"])
    assert str(err.value).splitlines()[1:] == [
        "  policy_dir / policy_factory: expected exactly one of them, got neither "
        "(e.g. policy_dir=<fiper checkpoint dir> or policy_factory=my_pkg.policies:load)",
        "  out is required (e.g. out=<value>)",
        "  seeds.count=-1: expected an integer >= 1 (e.g. seeds.count=10)",
    ]


def test_a_fix_the_evaluation_suggests_passes_validation():
    """The unknown-plot_method error suggests plot_method=null: validation accepts it (and still refuses an empty name)."""
    from launch.evaluate import CHECKS
    from launch.validate import validate

    with initialize_config_dir(config_dir=CONF, version_base=None):
        cfg = compose(config_name="evaluate", overrides=["rollouts=/nonexistent.zarr", "out=/tmp/x", "plot_method=null"])
    checks = {k: v for k, v in CHECKS.items() if k != "rollouts"}
    validate(cfg, checks, "evaluate")
    cfg.plot_method = ""
    with pytest.raises(ConfigError, match="plot_method='': expected a non-empty string or null"):
        validate(cfg, checks, "evaluate")
