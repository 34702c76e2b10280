"""The local preset (``hydra/launcher=local``, joblib): a job its config refuses reports its error and the
other jobs still finish their stores."""

from __future__ import annotations

import pytest
from sweep_helpers import TINY_STRESS, run_module, shown

from fiper.storage import EpisodeStore

pytest.importorskip("hydra_plugins.hydra_joblib_launcher", reason="local sweeps need the 'cluster' extra (pip install -e '.[cluster]')")


@pytest.mark.slow  # two joblib worker processes: ~10 s on 2 cores
def test_a_refused_job_does_not_stop_the_others(tmp_path):
    proc = run_module("launch.stress", ["-m", "hydra/launcher=local", *TINY_STRESS, "seeds.start=-5,0"], tmp_path)
    assert proc.returncode == 1, shown(proc)
    assert "seeds.start=-5: expected an integer >= 0" in proc.stderr, shown(proc)
    assert list(EpisodeStore.open(tmp_path / "sweep" / "stress_0.zarr").meta("seed")) == [0, 1], shown(proc)
