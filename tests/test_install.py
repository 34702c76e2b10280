"""fiper installs into an environment that already holds torch and leaves that torch alone."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import requires, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
EXTRAS = "dev,image,cluster,ray,adapters,codecs,train,lerobot,robomimic"


def torch_requirement() -> Requirement:
    found = [Requirement(r) for r in requires("fiper") or [] if Requirement(r).name == "torch" and not Requirement(r).marker]
    assert len(found) == 1, "fiper must declare torch exactly once among its runtime dependencies"
    return found[0]


def test_torch_is_a_range_that_admits_the_stacks_fiper_installs_beside():
    spec = torch_requirement().specifier
    assert not any(s.operator == "==" for s in spec), "an exact torch pin refuses every other stack's torch"
    # lerobot 0.4 (torch < 2.11), the GPU image (2.11), the build `make` installs (2.13.0+cpu here)
    for admitted in ("2.7.1", "2.10.0", "2.11.0", "2.13.0"):
        assert spec.contains(admitted), f"torch {admitted} is outside fiper's range {spec}"
    assert spec.contains(Version(version("torch")).base_version)


def test_installing_fiper_into_this_environment_installs_no_torch():
    """The resolver, offline, against this environment (torch installed first, as `make` does):
    every requirement of fiper and its extras is met as installed, so nothing would be replaced."""
    pytest.importorskip("setuptools")  # the build backend, used without an isolated build env
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--no-index", "--no-build-isolation",
           "--report", "-", f"{ROOT}[{EXTRAS}]"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert done.returncode == 0, f"pip would need packages that are not installed:\n{done.stderr[-3000:]}"
    report = json.loads(done.stdout)
    installing = sorted(item["metadata"]["name"].lower() for item in report["install"])
    assert installing == ["fiper"], f"installing fiper would also install or replace {installing}"


def test_the_floors_the_readme_says_were_tested_are_the_stated_floors():
    """README.md's install line of the floors tested together names every requirement at its stated floor, so a
    raised floor or a new requirement cannot leave it behind (torch: the one build tested; ray: untested)."""
    import re
    import tomllib

    from packaging.utils import canonicalize_name

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    stated = [Requirement(r) for r in project["dependencies"]]
    stated += [Requirement(r) for extra in project["optional-dependencies"].values() for r in extra]
    floors = {}
    for req in stated:
        lower = [s.version for s in req.specifier if s.operator == ">="]
        assert len(lower) == 1, f"{req} states no single floor"
        floors[canonicalize_name(req.name)] = Version(lower[0])
    line = next(x for x in (ROOT / "README.md").read_text().splitlines() if x.startswith("pip install torch=="))
    tested = {canonicalize_name(n): Version(v) for n, v in re.findall(r"([A-Za-z][\w.-]*)==(\S+)", line)}
    assert tested.pop("torch") in torch_requirement().specifier
    assert {n: v for n, v in tested.items() if floors.get(n) != v} == {}, "README.md names versions that are not the floors"
    assert set(floors) - set(tested) == {"torch", "ray", "hydra-ray-launcher"}, "floors README.md does not name as tested"
