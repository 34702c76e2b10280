"""The SLURM preset (``hydra/launcher=slurm``): its jobs run through submitit, and its settings are the sbatch
script's.

No SLURM scheduler runs here, so the jobs go through hydra-submitit-launcher's ``submitit_local`` launcher:
the same launcher class, job pickling and result path as on SLURM, with the preset's resources, in local
processes. The preset's SLURM-only settings are checked against the sbatch script submitit writes from them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from sweep_helpers import ROOT, TINY_STRESS, run_module, shown

from fiper.storage import EpisodeStore
from fiper.storage.merge import merge_stores
from launch import stress

pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="SLURM sweeps need the 'cluster' extra (pip install -e '.[cluster]')")
from submitit.slurm.slurm import SlurmExecutor, _make_sbatch_string  # noqa: E402

GENERIC = ("timeout_min", "cpus_per_task", "gpus_per_node", "tasks_per_node", "mem_gb", "nodes")  # submitit's shared resources


def _slurm_preset(*overrides: str) -> dict:
    with initialize_config_dir(config_dir=str(ROOT / "launch" / "conf"), version_base=None):
        cfg = compose(config_name="stress", overrides=["policy_dir=x", "out=x", "hydra/launcher=slurm", *overrides],
                      return_hydra_config=True)
    return OmegaConf.to_container(cfg.hydra.launcher, resolve=True)


@pytest.mark.slow  # two submitit job processes: ~15 s on 2 cores
def test_slurm_preset_jobs_run_through_submitit(tmp_path):
    resources = [f"hydra.launcher.{k}={v}" for k, v in _slurm_preset().items() if k in GENERIC]
    assert len(resources) == len(GENERIC)
    proc = run_module("launch.stress", ["-m", "hydra/launcher=submitit_local", *resources, *TINY_STRESS, "seeds.start=0,2"], tmp_path)
    assert proc.returncode == 0, shown(proc)
    assert len(list(tmp_path.glob("multirun/*/*/.submitit/*/*_result.pkl"))) == 2, shown(proc)  # each job ran as a submitit job
    stores = sorted((tmp_path / "sweep").glob("stress_*.zarr"))
    assert [list(EpisodeStore.open(s).meta("seed")) for s in stores] == [[0, 1], [2, 3]]
    outcome = merge_stores(stores, tmp_path / "stress.zarr")
    assert (outcome.n_episodes, outcome.n_duplicates) == (4, 0)
    assert list(EpisodeStore.open(tmp_path / "stress.zarr").meta("seed")) == [0, 1, 2, 3]
    # The merged store keeps the jobs' fingerprint: a later run of the same sweep resumes into it.
    with initialize_config_dir(config_dir=str(ROOT / "launch" / "conf"), version_base=None):
        cfg = compose(config_name="stress", overrides=[
            *(a for a in TINY_STRESS if not a.startswith(("out=", "seeds.count="))), f"out={tmp_path / 'stress.zarr'}",
            "seeds.start=0", "seeds.count=5"])
    stress.run(cfg)
    assert list(EpisodeStore.open(tmp_path / "stress.zarr").meta("seed")) == [0, 1, 2, 3, 4]  # only seed 4 was new


def test_slurm_preset_writes_the_sbatch_script_it_promises(tmp_path):
    """Every key of the preset is one submitit's SLURM executor takes, and lands in the sbatch header."""
    params = _slurm_preset("hydra.launcher.partition=cpu", "hydra.launcher.gpus_per_node=1")
    params.pop("_target_")
    params.pop("submitit_folder")
    rename = SlurmExecutor._equivalence_dict()  # the generic names submitit translates (timeout_min -> time, ...)
    sbatch = {rename.get(k, k): v for k, v in params.items() if v is not None and k != "max_num_timeout"}
    assert set(sbatch) <= SlurmExecutor._valid_parameters(), set(sbatch) - SlurmExecutor._valid_parameters()
    sbatch["mem"] = f"{sbatch['mem']}GB"
    script = _make_sbatch_string(command="python -u -m submitit.core._submit x", folder=tmp_path, map_count=100, **sbatch)
    for line in ("--partition=cpu", "--cpus-per-task=2", "--mem=8GB", "--time=120", "--gpus-per-node=1", "--array=0-99%64",
                 "--ntasks-per-node=1", "--nodes=1"):
        assert f"#SBATCH {line}\n" in script, f"{line} missing from:\n{script}"
