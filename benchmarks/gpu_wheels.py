"""Wheels for a GPU machine without a package index: what fiper needs beyond its preinstalled stack.

    python -m benchmarks.gpu_wheels [--dest wheels] [--python-version 3.12] [--max-mib 60]

Run it on a machine that reaches an index; then take ``wheels/`` (git-ignored) to the GPU
machine beside the repository, where ``bash benchmarks/gpu_check.sh`` installs from it offline.
The GPU machine is assumed to hold Python 3.12 with torch and ``PREINSTALLED`` (and what those
pulled in, ``THEIR_DEPENDENCIES``), and to accept at most 64 MiB of files brought along.

1. The requirements are the project's own (``pyproject.toml``: dependencies, the ``dev`` extra,
   the build backend) less the preinstalled ones, each pinned to the version installed where this
   script runs (the versions the test suite passed with; ``--latest`` keeps the ranges instead).
   They go to ``wheels/requirements.txt``.
2. ``pip download`` fetches them with every dependency as binary wheels for CPython 3.12 on
   manylinux x86_64 into a staging folder; wheels of preinstalled packages stay there, the rest
   go to ``wheels/``. Their total must stay under ``--max-mib``.
3. A dry-run install (``--no-index``, for 3.12, into an empty target) must resolve every
   requirement from ``wheels/`` plus the preinstalled packages alone. It prints what would come
   from where, and exits 1 if anything else would be needed or the size is over.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# On the GPU machine with its torch (their versions are whatever it has).
PREINSTALLED = ("torch", "numpy", "numba", "matplotlib", "tqdm", "safetensors", "pyyaml", "imageio")
# Installed with them: torch's, matplotlib's, numba's and imageio's own dependencies.
THEIR_DEPENDENCIES = ("filelock", "typing-extensions", "sympy", "mpmath", "networkx", "jinja2", "markupsafe", "fsspec",
                      "setuptools", "triton", "llvmlite", "contourpy", "cycler", "fonttools", "kiwisolver", "packaging",
                      "pillow", "pyparsing", "python-dateutil", "six")
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64")
# hydra-core's parser runtime has no wheel on PyPI, only a source archive (pure Python).
SOURCE_ONLY = ("antlr4-python3-runtime==4.9.3",)


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    return normalise(re.match(r"[A-Za-z0-9_.-]+", requirement.strip()).group(0))


def requirements() -> list[str]:
    """The project's requirements (dependencies, dev extra, build backend) that the GPU machine lacks."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wanted = [*project["project"]["dependencies"], *project["project"]["optional-dependencies"]["dev"],
              *project["build-system"]["requires"]]
    have = {normalise(n) for n in PREINSTALLED}
    return [r for r in wanted if requirement_name(r) not in have]


def pinned(reqs: list[str]) -> list[str]:
    """Each requirement at the version installed in the running interpreter (what the tests ran with here)."""
    out = []
    for r in reqs:
        try:
            out.append(f"{requirement_name(r)}=={metadata.version(requirement_name(r))}")
        except metadata.PackageNotFoundError:
            out.append(r)
    return out


def target_flags(python_version: str) -> list[str]:
    flags = ["--python-version", python_version, "--implementation", "cp", "--only-binary=:all:"]
    for platform in PLATFORMS:
        flags += ["--platform", platform]
    return flags


def pip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True)


def wheel_name(path: Path) -> str:
    return normalise(path.name.split("-")[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dest", type=Path, default=ROOT / "wheels")
    parser.add_argument("--python-version", default="3.12")
    parser.add_argument("--max-mib", type=float, default=60.0)
    parser.add_argument("--latest", action="store_true", help="newest versions in the project's ranges instead of this environment's")
    args = parser.parse_args()
    reqs = requirements() if args.latest else pinned(requirements())
    provided = {normalise(n) for n in (*PREINSTALLED, *THEIR_DEPENDENCIES)}
    staging = Path(tempfile.mkdtemp(prefix="fiper_wheels_"))
    print(f"requirements ({len(reqs)}): {' '.join(reqs)}")
    for source_only in SOURCE_ONLY:  # pure Python, published as a source archive only: built here once
        built = pip("wheel", "--no-deps", "--wheel-dir", str(staging), source_only)
        if built.returncode != 0:
            print(built.stdout[-2000:], built.stderr[-2000:], sep="\n")
            print(f"could not build a wheel of {source_only} (it has no wheel on the index)")
            return 2
    done = pip("download", "--dest", str(staging), "--find-links", str(staging), *target_flags(args.python_version), *reqs)
    if done.returncode != 0:
        print(done.stdout[-3000:], done.stderr[-3000:], sep="\n")
        print("pip download failed: this script needs a package index (PIP_INDEX_URL) and wheels for "
              f"CPython {args.python_version} on manylinux x86_64")
        return 2
    if args.dest.exists():
        shutil.rmtree(args.dest)
    args.dest.mkdir(parents=True)
    carried = []
    for wheel in sorted(staging.glob("*.whl")):
        # setuptools is there (torch needs it on 3.12); its wheel comes along in case that one is too old to build fiper.
        if wheel_name(wheel) not in provided or wheel_name(wheel) == "setuptools":
            carried.append(shutil.move(str(wheel), args.dest / wheel.name))
    (args.dest / "requirements.txt").write_text("\n".join(reqs) + "\n")
    sizes = sorted(((Path(w).stat().st_size, Path(w).name) for w in carried), reverse=True)
    total = sum(s for s, _ in sizes) / 2**20
    print(f"\n{len(sizes)} wheels in {args.dest} (python {args.python_version}, {', '.join(PLATFORMS)}):")
    for size, name in sizes:
        print(f"  {size / 2**20:7.2f} MiB  {name}")
    print(f"  total {total:.2f} MiB (limit {args.max_mib:g} MiB)")
    left = sorted(wheel_name(w) for w in staging.glob("*.whl"))
    print(f"left out, preinstalled on the GPU machine: {', '.join(left) or 'none'}")

    # Would the offline install resolve? Everything must come from wheels/ or be preinstalled there.
    report = staging / "report.json"
    check = pip("install", "--dry-run", "--ignore-installed", "--no-index", "--find-links", str(args.dest),
                "--find-links", str(staging), *target_flags(args.python_version), "--target", str(staging / "target"),
                "--report", str(report), "--quiet", *reqs)
    if check.returncode != 0:
        print(check.stdout[-3000:], check.stderr[-3000:], sep="\n")
        print("the dry-run install does not resolve from wheels/ plus the preinstalled packages")
        return 1
    installed = [(normalise(i["metadata"]["name"]), i["metadata"]["version"]) for i in json.loads(report.read_text())["install"]]
    in_dest = {wheel_name(Path(w)) for w in carried}
    missing = [f"{n}=={v}" for n, v in installed if n not in in_dest and n not in provided]
    print(f"dry-run install for python {args.python_version}: {len(installed)} packages, "
          f"{sum(n in in_dest for n, _ in installed)} from {args.dest.name}/, "
          f"{sum(n not in in_dest and n in provided for n, _ in installed)} preinstalled there")
    shutil.rmtree(staging)
    if missing:
        print(f"NOT covered: {', '.join(missing)}")
        return 1
    if total > args.max_mib:
        print(f"over the limit: {total:.2f} MiB > {args.max_mib:g} MiB")
        return 1
    print(f"ok: copy {args.dest.name}/ beside the repository on the GPU machine and run bash benchmarks/gpu_check.sh")
    return 0


if __name__ == "__main__":
    sys.exit(main())
