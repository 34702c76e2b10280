"""A stress sweep on a running Ray cluster through the ``ray_cluster`` preset, merged into one store.

The test starts a one-node cluster the way docs/sweeps.md does on a head node (``ray start --head``,
in its own directory, on free ports), points ``launch.stress -m hydra/launcher=ray_cluster`` at it, and
stops every process of the cluster afterwards.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from sweep_helpers import ROOT, TINY_STRESS, run_module, shown

from fiper.storage import EpisodeStore
from launch import merge_stores

pytest.importorskip("hydra_plugins.hydra_ray_launcher", reason="Ray sweeps need the 'ray' extra (pip install -e '.[ray]')")
RAY = Path(sys.executable).with_name("ray")
pytestmark = pytest.mark.slow  # a Ray cluster start and three worker processes: ~20 s on 2 cores


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _wait_until_ready(address: str, env: dict[str, str], deadline: float) -> None:
    """Block until ``ray status`` reaches the head: the address line is printed before its services all answer, and a
    driver that connects too early can wait on them past the test's timeout."""
    while True:
        status = subprocess.run([str(RAY), "status", f"--address={address}"], env=env, capture_output=True, text=True,
                                timeout=max(5.0, deadline - time.monotonic()))
        if status.returncode == 0:
            return
        assert time.monotonic() < deadline, f"ray status never reached the head at {address}:\n{status.stderr[-3000:]}"
        time.sleep(1.0)


@pytest.fixture
def ray_head():
    """(cluster address, the head's working directory, the env a driver needs) of a fresh one-node Ray cluster
    with 2 CPUs and token authentication (Ray's default once ~/.ray/auth_token exists) on a token of its own."""
    home = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # short: Ray's socket paths must stay under 107 bytes
    gcs, client, dashboard, agent = _free_ports(4)
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    log = open(home / "head.log", "w+")
    proc = subprocess.Popen(
        [str(RAY), "start", "--head", "--block", f"--port={gcs}", "--num-cpus=2", "--include-dashboard=false",
         f"--dashboard-port={dashboard}", f"--ray-client-server-port={client}", f"--dashboard-agent-listen-port={agent}",
         f"--temp-dir={home}", "--disable-usage-stats"],
        cwd=home, env={**os.environ, **auth}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # its own process group: stopped as one
    try:
        address, deadline = None, time.monotonic() + 90
        while address is None and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
            log.seek(0)
            found = re.search(r"ray start --address='([^']+)'", log.read())
            address = found.group(1) if found else None
        log.seek(0)
        assert address, f"ray start --head did not come up:\n{log.read()[-3000:]}"
        _wait_until_ready(address, {**os.environ, **auth}, deadline + 30)
        yield address, home, auth
    finally:
        for sig, wait in ((signal.SIGINT, 20), (signal.SIGKILL, 5)):  # SIGINT to the group: Ctrl-C in the head's terminal
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # raylet, GCS and workers left behind by the head
        except ProcessLookupError:
            pass
        log.close()
        shutil.rmtree(home, ignore_errors=True)


def test_stress_sweep_runs_on_a_ray_cluster_and_merges(ray_head, tmp_path):
    address, head_dir, auth = ray_head
    launch_dir = tmp_path / "launch_dir"
    launch_dir.mkdir()
    # Jobs at seeds 0-1 and 1-2 overlap in seed 1; seeds.start=-5 is refused by its job's validation.
    proc = run_module("launch.stress", ["-m", "hydra/launcher=ray_cluster", f"hydra.launcher.ray.init.address={address}",
                                        *TINY_STRESS, "seeds.start=0,1,-5"], launch_dir, env=auth)
    assert proc.returncode == 1, shown(proc)
    assert "seeds.start=-5: expected an integer >= 0" in proc.stderr, shown(proc)  # the refused job's own message
    assert "(_run_job pid=" in proc.stdout + proc.stderr, shown(proc)  # the jobs ran as Ray tasks
    # Relative paths resolve against the launching directory, not the Ray worker's (the head's).
    stores = sorted((launch_dir / "sweep").glob("stress_*.zarr"))
    assert [s.name for s in stores] == ["stress_0.zarr", "stress_1.zarr"] and not (head_dir / "sweep").exists()
    assert [list(EpisodeStore.open(s).meta("seed")) for s in stores] == [[0, 1], [1, 2]]
    assert len(list(launch_dir.glob("multirun/*/*/*/.hydra/config.yaml"))) == 3  # job logs beside the sweep too

    with initialize_config_dir(config_dir=str(ROOT / "launch" / "conf"), version_base=None):
        cfg = compose(config_name="merge_stores", overrides=[f"stores={launch_dir}/sweep/stress_*.zarr", f"out={tmp_path}/merged.zarr"])
    outcome = merge_stores.run(cfg)
    assert (outcome.n_episodes, outcome.n_duplicates, outcome.duplicates) == (3, 1, [0, 1])
    merged = EpisodeStore.open(tmp_path / "merged.zarr")
    assert list(merged.meta("seed")) == [0, 1, 2]
    second = EpisodeStore.open(stores[1])
    np.testing.assert_array_equal(merged.episode(2)["action"], second.episode(1)["action"])  # seed 2, from the second job
    np.testing.assert_array_equal(merged.episode_decisions(2)["samples"], second.episode_decisions(1)["samples"])
    assert merged.attrs["fingerprint"] == second.attrs["fingerprint"]
