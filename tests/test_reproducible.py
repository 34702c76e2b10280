"""The same commands on the same code and libraries give the same outputs: demonstrations, trained weights and
monitored rollouts are identical bit for bit run twice, only the recorded timings differ."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import zarr
from hydra import compose, initialize_config_dir
from safetensors.numpy import load_file

from launch import calibrate, collect, fit, stress, train

ROOT = Path(__file__).resolve().parents[1]
CONF = str(ROOT / "launch" / "conf")
SHIPPED = ROOT / "launch" / "checkpoints" / "pick_place_diffusion_mlp"
TIMING = ("decisions/timing/", "meta/episode_checksums")  # wall-clock times, and the checksums that cover them


def _run(module, name: str, overrides: list[str]):
    with initialize_config_dir(config_dir=CONF, version_base=None):
        return module.run(compose(name, overrides))


def _record(root: Path) -> None:
    """collect -> train; in-distribution rollouts -> fit + calibrate -> monitored stress rollouts; tiny, into ``root``."""
    env = ["env=pick_place", "env.shifts=[]"]
    _run(collect, "collect", [*env, "n_episodes=3", "seed=0", f"out={root / 'demos.zarr'}", "progress=false"])
    _run(train, "train", [f"data={root / 'demos.zarr'}", "policy=diffusion_mlp", "policy.mlp_hidden=32", "policy.encoder_hidden=32",
                          "policy.n_action_steps=4", "train.steps=30", "train.batch_size=16", "train.val_every=10",
                          "train.checkpoint_every=30", "train.cpu_threads=1", "train.progress=false", f"out={root / 'policy'}"])
    shipped = f"policy_dir={SHIPPED}"  # rollouts need a policy that succeeds: the shipped one
    common = [*env, shipped, "num_samples=4", "cpu_threads=1", "progress=false"]
    for store, start in (("fit.zarr", 10000), ("calibration.zarr", 20000)):
        _run(stress, "stress", [*common, "cells=[[none,[0.0]]]", f"seeds.start={start}", "seeds.count=5", f"out={root / store}"])
    _run(fit, "fit", [f"data={root / 'fit.zarr'}", shipped, f"out={root / 'monitor'}", "num_samples=4",
                      "cpu_threads=1", "progress=false"])
    _run(calibrate, "calibrate", [f"data={root / 'calibration.zarr'}", shipped, f"monitor_dir={root / 'monitor'}",
                                  "delta=0.5", "cpu_threads=1"])
    _run(stress, "stress", [*common, f"monitor_dir={root / 'monitor'}", "cells=[[none,[0.0]],[obstacle,[1.0]]]",
                            "seeds.start=30000", "seeds.count=2", f"out={root / 'stress.zarr'}"])


def _arrays(path: Path) -> dict[str, np.ndarray]:
    def walk(group, prefix=""):  # zarr warns of the writer's lock file beside the arrays: not an array
        for key, member in group.members():
            if isinstance(member, zarr.Group):
                yield from walk(member, f"{prefix}{key}/")
            else:
                yield f"{prefix}{key}", member[...]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return dict(walk(zarr.open_group(str(path), mode="r")))


def test_collect_train_fit_and_rollouts_run_twice_give_identical_outputs(tmp_path):
    for name in ("a", "b"):
        _record(tmp_path / name)
    first, second = load_file(tmp_path / "a/policy/model.safetensors"), load_file(tmp_path / "b/policy/model.safetensors")
    assert first.keys() == second.keys() and all(np.array_equal(first[k], second[k]) for k in first)
    for store in ("demos.zarr", "fit.zarr", "calibration.zarr", "stress.zarr"):
        a, b = _arrays(tmp_path / "a" / store), _arrays(tmp_path / "b" / store)
        assert a.keys() == b.keys()
        compared = [k for k in a if not k.startswith(TIMING)]
        assert {"data/action", "meta/success"} <= set(compared)
        different = [k for k in compared if not np.array_equal(a[k], b[k], equal_nan=True)]
        assert not different, f"{store}: {different}"
    stressed = _arrays(tmp_path / "a" / "stress.zarr")
    assert np.isfinite(stressed["decisions/score/rnd_oe"]).all() and stressed["decisions/alarm"].any()  # the monitor ran and alarmed
