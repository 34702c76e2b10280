"""Every code example a user copies from the docs works against the code as it is.

Covers README.md and docs/*.md except docs/benchmarks.md (benchmark scripts, no launch commands)
and docs/method.md (no code). docs/results.md holds only shell blocks of long experiment runs: its
commands are composed, never run. Two checks:

* Every fenced ```python block is executed: each in a fresh namespace and its own temporary
  working directory, all blocks in one subprocess (nothing a block writes lands in the
  repository, and this process's torch / hydra state stays clean). Tracebacks point at the
  doc's own lines. A block that uses objects the surrounding prose introduces (``policy``,
  ``obs``, a fitted monitor in ``runs/monitor``, ...) gets exactly those names from a short
  prelude in ``BLOCKS`` -- tiny untrained policies, the shipped pick-and-place checkpoint,
  synthetic rollout stores -- and no others, so a missing import in a doc still fails. A
  ``check`` then asserts what the prose promises. Blocks that cannot run are skipped in
  ``BLOCKS`` with a reason; the rest run unchanged except for the few ``replace`` edits listed
  there (each with its reason: a shorter run, the CPU instead of a GPU).
* Every ``python -m launch.<entry> ...`` command of a shell block, and each one quoted inline with
  overrides, is composed with hydra's ``--cfg job --resolve`` (``COMMAND_FRAGMENTS`` adds the
  overrides the prose quotes on their own): config groups and override keys must exist,
  interpolations must resolve and no mandatory value (``???``) may be left out. ``<placeholder>``
  and ``...`` values become ``x``; a multirun sweep composes its first point.

The two subprocesses run side by side; the whole file takes well under a minute on 2 CPU cores.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from docs_blocks import BLOCKS, HELPERS, Block  # per-block preludes, checks and skips

ROOT = Path(__file__).resolve().parents[1]
DOCS = ["README.md"] + [f"docs/{name}.md" for name in (
    "adapters", "monitor", "control_loop", "interventions", "scores", "calibration", "evaluation", "envs",
    "policies", "rollout_format", "metrics", "sweeps", "architecture", "results")]
TIMEOUT_S = 240


# ---------------------------------------------------------------------------------------------- extraction
@dataclass(frozen=True)
class CodeBlock:
    doc: str
    line: int  # 1-based line of the block's first code line
    lang: str
    code: str

    @property
    def key(self) -> tuple[str, str]:
        """(doc, first non-blank code line): stable when text above the block moves."""
        first = next((ln.strip() for ln in self.code.splitlines() if ln.strip()), "")
        return self.doc, first

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}"


def code_blocks(doc: str) -> list[CodeBlock]:
    lines = (ROOT / doc).read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        fence = re.match(r"^```(\w*)\s*$", lines[i])
        if not fence:
            i += 1
            continue
        j = i + 1
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        blocks.append(CodeBlock(doc, i + 2, fence.group(1), "\n".join(lines[i + 1:j]) + "\n"))
        i = j + 1
    return blocks


def python_blocks() -> list[CodeBlock]:
    return [b for doc in DOCS for b in code_blocks(doc) if b.lang == "python"]


def block_by_key(key: tuple[str, str]) -> CodeBlock:
    found = [b for b in python_blocks() if b.key == key]
    assert len(found) == 1, f"{key}: {len(found)} python blocks start with that line"
    return found[0]


# ---------------------------------------------------------------------------------------------- python blocks
def block_spec(block: CodeBlock, workdir: Path) -> dict:
    entry = BLOCKS.get(block.key, Block())
    code = block.code
    for old, new, _reason in entry.replace:
        assert old in code, f"{block.id}: replacement target {old!r} is gone from the doc; update BLOCKS"
        code = code.replace(old, new)
    files = {path: block_by_key(src).code if isinstance(src, tuple) else src for path, src in entry.files.items()}
    return {
        "id": block.id, "doc": block.doc, "line": block.line, "code": code, "workdir": str(workdir),
        "prelude": textwrap.dedent(entry.prelude), "provides": list(entry.provides), "check": textwrap.dedent(entry.check),
        "after": [{"doc": a.doc, "line": a.line, "code": a.code} for a in map(block_by_key, entry.after)],
        "files": files, "copy": list(entry.copy), "path": entry.path,
    }


BLOCK_RUNNER = r'''
import contextlib, io, json, linecache, os, shutil, sys, time, traceback, types
import torch
torch.set_num_threads(1)
root, spec_path, out_path = sys.argv[1:4]
spec = json.load(open(spec_path))
H = types.ModuleType("doc_helpers")
exec(compile(spec["helpers"], "<doc helpers>", "exec"), H.__dict__)


def run(code, doc, line, namespace):
    path = os.path.join(root, doc)
    if path not in linecache.cache:  # tracebacks show the doc's lines
        text = open(path).read()
        linecache.cache[path] = (len(text), None, text.splitlines(True), path)
    exec(compile("\n" * (line - 1) + code, path, "exec"), namespace)


results = {}
for b in spec["blocks"]:
    start, out = time.perf_counter(), io.StringIO()
    os.makedirs(b["workdir"], exist_ok=True)
    os.chdir(b["workdir"])
    if b["path"]:
        sys.path.insert(0, b["workdir"])
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            for rel in b["copy"]:
                shutil.copytree(os.path.join(root, rel), rel)
            for rel, text in b["files"].items():
                os.makedirs(os.path.dirname(rel) or ".", exist_ok=True)
                open(rel, "w").write(text)
            prelude = {"H": H, "__name__": "__doc_prelude__"}
            exec(compile(b["prelude"], "<prelude of " + b["id"] + ">", "exec"), prelude)
            namespace = {"__name__": "__main__", **{k: prelude[k] for k in b["provides"]}}
            for a in b["after"]:
                run(a["code"], a["doc"], a["line"], namespace)
            run(b["code"], b["doc"], b["line"], namespace)
            exec(compile(b["check"], "<check of " + b["id"] + ">", "exec"), namespace)
        results[b["id"]] = {"ok": True, "seconds": time.perf_counter() - start}
    except BaseException:
        results[b["id"]] = {"ok": False, "seconds": time.perf_counter() - start,
                            "error": traceback.format_exc(), "output": out.getvalue()[-3000:]}
    finally:
        if b["path"]:
            sys.path.remove(b["workdir"])
        os.chdir(root)
    json.dump(results, open(out_path, "w"))
'''


# ---------------------------------------------------------------------------------------------- launch commands
@dataclass(frozen=True)
class Command:
    where: str
    module: str
    args: tuple[str, ...]
    partial: bool = False  # the doc elides arguments ('…'): mandatory values are not checked

    @property
    def id(self) -> str:
        return f"{self.where}:{self.module}"


PLACEHOLDER = re.compile(r"<[^<>]*>")  # '<demo store>' -> x
CALL = re.compile(r"(?:\$py|\S*python3?)\s+-m\s+(launch\.\w+)(.*)")


def normalise(args: list[str]) -> tuple[tuple[str, ...], bool]:
    out, partial = [], False
    for arg in args:
        if arg in ("…", "..."):
            partial = True
            continue
        if arg.startswith("[") and arg.endswith("]") and "=" in arg and not arg.startswith("[["):
            arg = arg[1:-1]  # '[key=value]': an optional argument
        arg = re.sub(r"=\.\.\.$", "=x", arg)
        out.append(arg)
    return tuple(out), partial


def launch_commands() -> list[Command]:
    commands = []
    for doc in DOCS:
        text = (ROOT / doc).read_text()
        for block in code_blocks(doc):
            if block.lang not in ("", "bash", "sh", "shell", "console"):
                continue
            start, line = 0, ""
            for offset, raw in enumerate(block.code.splitlines()):
                start, line = (start if line else offset), line + raw
                if line.endswith("\\"):  # continued on the next line
                    line = line[:-1] + " "
                    continue
                call = CALL.search(line)
                if call:
                    args, partial = normalise(shlex.split(PLACEHOLDER.sub("x", call.group(2)), comments=True))
                    commands.append(Command(f"{doc}:{block.line + start}", call.group(1), args, partial))
                line = ""
        for span in re.finditer(r"`((?:\$py|python) -m launch\.[^`]*)`", text):
            call = CALL.search(" ".join(span.group(1).split()))
            if call and ("=" in call.group(2) or "--config-name" in call.group(2)):
                args, partial = normalise(shlex.split(PLACEHOLDER.sub("x", call.group(2))))
                line = text.count("\n", 0, span.start()) + 1
                commands.append(Command(f"{doc}:{line}", call.group(1), args, partial))
    return commands


# Overrides the prose quotes on their own (no full command), composed with what makes them complete.
COMMAND_FRAGMENTS = [
    Command("docs/control_loop.md (factories)", "launch.stress",
            ("policy_dir=x", "out=x", "+factories.obstacle=my_pkg.envs:make_with_obstacle")),
    Command("docs/policies.md (policy fields)", "launch.train",
            ("data=x", "out=x", "policy=diffusion_unet", "policy.horizon=8", "policy.obs_keys=[agent_pos]")),
    Command("docs/evaluation.md (+method)", "launch.evaluate", ("rollouts=x", "out=x", "+method@methods.mine=fiper")),
    Command("docs/sweeps.md (split by shift)", "launch.stress",
            ("-m", "policy_dir=x", "cells=[[obstacle,[1.0]]],[[push,[1.0]]]", "out=runs/sweep/${hydra.job.num}.zarr")),
    Command("docs/sweeps.md (GPU on SLURM)", "launch.stress",
            ("policy_dir=x", "out=x", "hydra/launcher=slurm", "hydra.launcher.gpus_per_node=1", "device=cuda")),
    Command("docs/architecture.md (threads)", "launch.fit", ("data=x", "out=x", "cpu_threads=null")),
    Command("docs/architecture.md (training threads)", "launch.train", ("data=x", "out=x", "train.cpu_threads=1")),
    Command("docs/monitor.md (joint)", "launch.calibrate", ("data=x", "monitor_dir=x", "joint=true")),
]

COMMAND_RUNNER = r'''
import contextlib, io, json, re, runpy, sys
from hydra.core.override_parser.overrides_parser import OverridesParser

spec_path, out_path = sys.argv[1:3]
parser = OverridesParser.create()
results = {}
for cmd in json.loads(open(spec_path).read()):
    args = list(cmd["args"])
    if "-m" in args or "--multirun" in args:  # compose the sweep's first point
        args = [a for a in args if a not in ("-m", "--multirun")]
        plain, skip_next = [], False
        for a in args:  # overrides only: no flags, no flag values
            if not skip_next and not a.startswith("-"):
                plain.append(a)
            skip_next = a in ("--config-name", "-cn", "--config-path", "-cp", "--config-dir", "-cd")
        for arg, o in zip(plain, parser.parse_overrides(plain)):
            if o.is_sweep_override():
                args[args.index(arg)] = f"{o.get_key_element()}={next(iter(o.sweep_string_iterator()))}"
    flags = ["--cfg", "job"] + ([] if "${hydra." in " ".join(args) else ["--resolve"])
    sys.argv = [cmd["module"], *flags, *args]
    out, code = io.StringIO(), 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            runpy.run_module(cmd["module"], run_name="__main__", alter_sys=True)
    except SystemExit as exit:
        code = exit.code or 0
    except BaseException as err:
        code, _ = 1, out.write(repr(err))
    text = out.getvalue()
    missing = [] if cmd["partial"] else re.findall(r"^\s*([\w.]+): '?\?\?\?'?\s*$", text, re.M)
    results[cmd["id"]] = {"rc": code, "missing": missing, "argv": sys.argv, "output": text[-2000:]}
    json.dump(results, open(out_path, "w"))
'''


# ---------------------------------------------------------------------------------------------- running both
def _env() -> dict[str, str]:
    return {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"), "PYTHONPATH": str(ROOT),
            "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}


@pytest.fixture(scope="module")
def doc_runs(tmp_path_factory):
    """Run every executable block and compose every command, in two subprocesses side by side."""
    tmp = tmp_path_factory.mktemp("docs_examples")
    blocks = [b for b in python_blocks() if not BLOCKS.get(b.key, Block()).skip]
    spec = {"helpers": HELPERS, "blocks": [block_spec(b, tmp / "work" / f"{i:02d}") for i, b in enumerate(blocks)]}
    commands = launch_commands() + COMMAND_FRAGMENTS
    (tmp / "blocks.json").write_text(json.dumps(spec))
    (tmp / "commands.json").write_text(json.dumps([
        {"id": c.id, "module": c.module, "args": list(c.args), "partial": c.partial} for c in commands]))
    runners = {"blocks": (BLOCK_RUNNER, str(ROOT)), "commands": (COMMAND_RUNNER,)}
    procs, logs = {}, {}
    for name, (runner, *args) in runners.items():  # logs go to files: two pipes could fill while one is read
        logs[name] = open(tmp / f"{name}.log", "w")
        procs[name] = subprocess.Popen([sys.executable, "-c", runner, *args, str(tmp / f"{name}.json"), str(tmp / f"{name}_out.json")],
                                       cwd=tmp, env=_env(), stdout=logs[name], stderr=subprocess.STDOUT)
    try:
        for proc in procs.values():
            proc.wait(timeout=TIMEOUT_S)
    finally:
        for name, proc in procs.items():
            if proc.poll() is None:
                proc.kill()
            logs[name].close()
    outputs = {}
    for name, proc in procs.items():
        path = tmp / f"{name}_out.json"
        outputs[name] = json.loads(path.read_text()) if path.exists() else {}
        outputs[f"{name}_log"] = f"exit {proc.returncode}\n{(tmp / f'{name}.log').read_text()[-4000:]}"
    return outputs


@pytest.mark.parametrize("block", python_blocks(), ids=lambda b: b.id)
def test_python_block_runs(block, doc_runs):
    entry = BLOCKS.get(block.key, Block())
    if entry.skip:
        pytest.skip(entry.skip)
    result = doc_runs["blocks"].get(block.id)
    assert result is not None, f"{block.id} did not run:\n{doc_runs['blocks_log']}"
    assert result["ok"], f"{block.id} failed:\n{result['error']}\n--- output ---\n{result['output']}"


@pytest.mark.parametrize("command", launch_commands() + COMMAND_FRAGMENTS, ids=lambda c: c.id)
def test_launch_command_composes(command, doc_runs):
    result = doc_runs["commands"].get(command.id)
    assert result is not None, f"{command.id} did not run:\n{doc_runs['commands_log']}"
    assert result["rc"] == 0, f"{' '.join(result['argv'])} does not compose:\n{result['output']}"
    assert not result["missing"], f"{' '.join(result['argv'])} leaves mandatory values unset: {result['missing']}"


def test_block_registry_matches_the_docs():
    """Every BLOCKS entry names one python block of the docs, so a stale entry cannot hide."""
    keys = [b.key for b in python_blocks()]
    assert all(keys.count(k) == 1 for k in keys), "two blocks start with the same line: BLOCKS could not tell them apart"
    assert not set(BLOCKS) - set(keys), f"BLOCKS entries without a doc block: {sorted(set(BLOCKS) - set(keys))}"


def test_extraction_finds_the_examples():
    """The parsers see the examples (a broken fence or regex would otherwise pass vacuously)."""
    docs = {b.doc for b in python_blocks()}
    assert {"README.md", "docs/monitor.md", "docs/control_loop.md", "docs/interventions.md", "docs/scores.md"} <= docs
    commands = launch_commands()
    entry_points = {f"launch.{p.stem}" for p in (ROOT / "launch").glob("*.py") if "@hydra.main" in p.read_text()}
    assert {c.module for c in commands} == entry_points and len(commands) >= 30  # every launch entry point is shown in use
    ids = [c.id for c in commands + COMMAND_FRAGMENTS]
    assert len(ids) == len(set(ids)), "two commands share an id"
