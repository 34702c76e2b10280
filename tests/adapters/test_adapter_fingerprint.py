"""The diffusers adapter's fingerprint is the same in every process: a store recorded by one command and the
policy a later command loads must read as the same policy (fit, calibrate and resumed sweeps compare them)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from external_policies import load

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def test_the_schedulers_bookkeeping_order_leaves_the_fingerprint_alone():
    adapter = load("cpu")
    before = adapter.fingerprint()
    defaults = list(adapter.scheduler.config["_use_default_values"])  # diffusers lists these in set order
    adapter.scheduler.register_to_config(_use_default_values=defaults[::-1])
    assert adapter.fingerprint() == before


def test_another_process_computes_the_same_fingerprint():
    code = "from external_policies import load; print(load('cpu').fingerprint())"
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)])}
    other = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    assert other.stdout.strip().splitlines()[-1] == load("cpu").fingerprint()
