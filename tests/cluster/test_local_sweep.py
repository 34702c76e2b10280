"""The local preset (``hydra/launcher=local``, joblib): a job its config refuses reports its error and the
other jobs still finish their stores; a sweep stopped with Ctrl-C says what it kept and resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from sweep_helpers import ROOT, TINY_STRESS, run_module, shown

from fiper.storage import EpisodeStore, StoreError

pytest.importorskip("hydra_plugins.hydra_joblib_launcher", reason="local sweeps need the 'cluster' extra (pip install -e '.[cluster]')")


@pytest.mark.slow  # two joblib worker processes: ~10 s on 2 cores
def test_a_refused_job_does_not_stop_the_others(tmp_path):
    proc = run_module("launch.stress", ["-m", "hydra/launcher=local", *TINY_STRESS, "seeds.start=-5,0"], tmp_path)
    assert proc.returncode == 1, shown(proc)
    assert "seeds.start=-5: expected an integer >= 0" in proc.stderr, shown(proc)
    assert list(EpisodeStore.open(tmp_path / "sweep" / "stress_0.zarr").meta("seed")) == [0, 1], shown(proc)


@pytest.mark.slow  # one process, stopped after its first episodes: ~10 s
def recorded(store) -> int:
    """Episodes the store holds now; 0 while it does not exist or is being created (its layout not yet complete)."""
    try:
        return EpisodeStore.open(store).n_episodes if store.exists() else 0
    except StoreError:
        return 0


def test_ctrl_c_ends_a_sweep_with_a_note_and_the_rerun_resumes(tmp_path):
    """Ctrl-C mid-sweep prints what was kept (no traceback through the store's writes) and exits 130; the store reads
    back intact and the same command records only the episodes it lacks."""
    args = [*TINY_STRESS, "seeds.start=0", "seeds.count=40"]
    env = {**os.environ, "MUJOCO_GL": "egl", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "launch.stress", *args], cwd=tmp_path, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    store = tmp_path / "sweep" / "stress_0.zarr"
    deadline = time.time() + 120
    while recorded(store) < 2 and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted: every episode recorded before it is kept" in err, err
    assert "Traceback" not in err, err
    kept = EpisodeStore.open(store).n_episodes
    assert 2 <= kept < 40
    rerun = run_module("launch.stress", args, tmp_path)
    assert rerun.returncode == 0, shown(rerun)
    assert sorted(EpisodeStore.open(store).meta("seed")) == list(range(40))
