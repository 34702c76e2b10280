"""The SLURM preset (``hydra/launcher=slurm``): its jobs run through submitit, and its settings are the sbatch
script's.

No SLURM scheduler runs here, so the jobs go through hydra-submitit-launcher's ``submitit_local`` launcher:
the same launcher class, job pickling and result path as on SLURM, with the preset's resources, in local
processes. The preset's SLURM-only settings are checked against the sbatch script submitit hands to ``sbatch``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from sweep_helpers import ROOT, TINY_STRESS, run_module, shown

from fiper.storage import EpisodeStore
from fiper.storage.merge import merge_stores
from launch import stress

pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="SLURM sweeps need the 'cluster' extra (pip install -e '.[cluster]')")

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


def test_slurm_preset_writes_the_sbatch_script_it_promises(tmp_path, monkeypatch):
    """Every key of the preset is one submitit's SLURM executor takes, and lands in the sbatch header.

    The preset goes through submitit's public executor as the hydra launcher passes it (shared resources by
    name, the rest with the ``slurm_`` prefix); an ``sbatch`` on PATH that keeps the script it is given stands
    in for the scheduler."""
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    bin_dir, kept = tmp_path / "bin", tmp_path / "submitted.sh"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(f'#!/bin/sh\ncp "$1" {kept}\necho "Submitted batch job 4242"\n')
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")  # submitit looks for srun to know it is on a cluster; never run
    for tool in ("sbatch", "srun"):
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    params = _slurm_preset("hydra.launcher.partition=cpu", "hydra.launcher.gpus_per_node=1")
    params.pop("_target_")
    executor = submitit.AutoExecutor(cluster="slurm", folder=tmp_path / "jobs",
                                     slurm_max_num_timeout=params.pop("max_num_timeout"))
    params.pop("submitit_folder")
    shared = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{k if k in shared else f"slurm_{k}": v for k, v in params.items()})
    jobs = executor.map_array(print, range(100))
    assert jobs[0].job_id.startswith("4242")
    script = kept.read_text()
    for line in ("--partition=cpu", "--cpus-per-task=2", "--mem=8GB", "--time=120", "--gpus-per-node=1", "--array=0-99%64",
                 "--ntasks-per-node=1", "--nodes=1"):
        assert f"#SBATCH {line}\n" in script, f"{line} missing from:\n{script}"
